# A churn model registered in an MLflow model registry: local data and
# training, then each run that passes its gate becomes a model version in
# MLflow, tagged with its lineage, with the `challenger` alias moved to it.
#
#   mlflow server --host 127.0.0.1 --port 5000
#   mlops apply -var mlflow_url=http://127.0.0.1:5000
#
# Roll back by pinning an older version: `-var pin=1` points the aliases
# at version 1 again, and the alias history in state records the move.

variable "mlflow_url" {
  type        = string
  default     = "http://127.0.0.1:5000"
  description = "the MLflow tracking server"
}

variable "model_name" {
  type        = string
  default     = "churn-predictor"
  description = "the registered model's name"
}

variable "quality" {
  type        = number
  default     = 0.91
  description = "what the stand-in trainer reports as its AUC"
}

variable "pin" {
  type        = string
  default     = null
  description = "a version to pin the model to (a rollback); null follows the newest run"
}

provider "mlflow" {
  url = var.mlflow_url
}

bucket "lake" {
  name = "churn-lake"
}

dataset "ratings" {
  bucket = bucket.lake
  source = "./data/ratings.csv"
  format = "csv"
  schema {
    column "user_id" { type = string }
    column "minutes" { type = float, min = 0 }
    column "returned" { type = bool }
  }
}

feature_set "engagement" {
  dataset = dataset.ratings
  entity  = "user_id"
  format  = "jsonl"
  feature "long_session" {
    type = bool
    expr = row.minutes >= 10
  }
  feature "label" {
    type = bool
    expr = row.returned
  }
}

training "churn" {
  command = ["python3", "train.py"]
  inputs  = {
    train = feature_set.engagement
  }
  hyperparameters = {
    quality = var.quality
  }
  metrics = ["auc", "rows"]
}

model "churn" {
  provider    = mlflow
  name        = var.model_name
  description = "Predicts whether a user comes back within a week."
  source      = training.churn
  version     = var.pin
  aliases     = ["challenger"]
  tags        = { team = "growth" }

  gate "auc" {
    condition     = training.churn.metrics.auc >= 0.8
    error_message = "candidate AUC below 0.8"
  }
}

output "version" {
  value = model.churn.version
}

output "uri" {
  value = model.churn.uri
}
