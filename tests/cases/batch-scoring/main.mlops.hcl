# A model run over a dataset as a batch job.

bucket "lake" {
  name = "scoring-lake"
}

dataset "rows" {
  bucket = bucket.lake
  source = "./rows.csv"
  schema {
    column "id" { type = string }
    column "amount" { type = float }
  }
}

training "threshold" {
  command = ["python3", "train.py"]
  inputs  = { rows = dataset.rows }
  timeout = "1m"
  metrics = ["auc"]
}

model "threshold" {
  source = training.threshold
}

batch_prediction "flags" {
  model   = model.threshold
  input   = dataset.rows
  command = ["python3", "score.py"]
  timeout = "1m"
}

output "predictions" {
  value = batch_prediction.flags.uri
}
