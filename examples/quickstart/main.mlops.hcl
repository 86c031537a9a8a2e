# A complete fraud-detection pipeline on the local provider: data ->
# validated dataset -> features -> training -> gated model -> local serving
# -> drift monitor. Runs with nothing installed beyond python3.

mlops {
  required_version = ">= 0.1"
}

variable "env" {
  type        = string
  default     = "dev"
  description = "deployment environment"
  validation {
    condition     = contains(["dev", "staging", "prod"], var.env)
    error_message = "env must be dev, staging or prod"
  }
}

variable "min_auc" {
  type        = number
  default     = 0.75
  description = "the AUC a candidate model must reach to be registered"
}

locals {
  prefix = "fraud-${var.env}"
}

bucket "lake" {
  name       = "${local.prefix}-lake"
  versioning = true
  lifecycle_rule {
    prefix      = "tmp/"
    expire_days = 7
  }
}

dataset "transactions" {
  bucket = bucket.lake
  source = "./data/transactions.csv"
  format = "csv"

  schema {
    column "customer_id" { type = string }
    column "amount" { type = float, min = 0 }
    column "age" { type = int, min = 18, max = 120, nullable = true }
    column "is_fraud" { type = bool }
  }

  check "enough_rows" {
    condition     = self.row_count >= 1000
    error_message = "too few rows to train on"
  }
}

feature_set "txn" {
  dataset = dataset.transactions
  entity  = "customer_id"
  # JSON Lines, so that train.py reads them with Python alone; the default
  # is Parquet, which every DataFrame library reads.
  format = "jsonl"

  feature "amount_log" {
    type = float
    expr = log1p(row.amount)
  }
  feature "is_adult" {
    type = bool
    expr = row.age >= 21
  }
  feature "label" {
    type = bool
    expr = row.is_fraud
  }
}

training "fraud" {
  command = ["python3", "train.py"]
  inputs  = {
    train = feature_set.txn
  }
  hyperparameters = {
    learning_rate = 0.1
    epochs        = 30
  }
  env     = { PYTHONHASHSEED = "0" }
  timeout = "10m"
  metrics = ["auc", "accuracy"]
}

model "fraud" {
  name   = "fraud-detector"
  source = training.fraud

  gate "auc" {
    condition     = training.fraud.metrics.auc >= var.min_auc
    error_message = "candidate AUC below ${var.min_auc}"
  }
  aliases = ["champion"]
}

serving "fraud_api" {
  model   = model.fraud
  command = ["python3", "serve.py"]
  env     = { LOG_LEVEL = "info" }
  rollout {
    strategy = "blue_green"
  }
}

monitor "fraud_drift" {
  reference = dataset.transactions
  current   = "./data/"
  columns   = ["amount", "age"]
  method    = "psi"
  threshold = 0.2
}

output "url" {
  value       = serving.fraud_api.url
  description = "where the model answers POST /predict"
}

output "model_version" {
  value = model.fraud.version
}
