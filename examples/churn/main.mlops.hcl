# Churn, the way feature platforms do it, on the local provider with
# nothing installed beyond python3: per-customer aggregates over time
# windows, labels joined to them as of the day each label was observed (no
# feature sees the future), a model trained on that, and the model run
# over every customer's latest features as a batch job.

bucket "lake" {
  name = "churn-lake"
}

dataset "transactions" {
  bucket = bucket.lake
  source = "./data/transactions.csv"
  schema {
    column "customer_id" { type = string }
    column "event_time" { type = timestamp }
    column "amount" { type = float, min = 0 }
    column "merchant" { type = string }
  }
}

dataset "labels" {
  bucket = bucket.lake
  source = "./data/labels.csv"
  schema {
    column "customer_id" { type = string }
    column "observed_at" { type = timestamp }
    column "churned" { type = bool }
  }
}

feature_set "activity" {
  dataset   = dataset.transactions
  entity    = "customer_id"
  timestamp = "event_time"
  # JSON Lines, so that the scripts read it with Python alone.
  format = "jsonl"

  aggregate "spend_30d" {
    function = "sum"
    column   = "amount"
    window   = "30d"
  }
  aggregate "transactions_30d" {
    function = "count"
    window   = "30d"
  }
  aggregate "merchants_30d" {
    function = "count_distinct"
    column   = "merchant"
    window   = "30d"
  }
}

training_set "churn" {
  labels    = dataset.labels
  entity    = "customer_id"
  timestamp = "observed_at"
  features  = [feature_set.activity]
  format    = "jsonl"
}

training "churn" {
  command = ["python3", "train.py"]
  inputs  = { train = training_set.churn }
  timeout = "5m"
  metrics = ["accuracy"]
}

model "churn" {
  name   = "churn"
  source = training.churn

  gate "accuracy" {
    condition     = training.churn.metrics.accuracy >= 0.6
    error_message = "the churn model is no better than a guess"
  }
}

batch_prediction "at_risk" {
  model   = model.churn
  input   = feature_set.activity
  command = ["python3", "score.py"]
  timeout = "5m"
}

output "predictions" {
  value = batch_prediction.at_risk.uri
}
