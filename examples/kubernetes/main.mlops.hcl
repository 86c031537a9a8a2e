# GPU training on Kubernetes and a KServe canary, fed from object storage.
#
# Data is uploaded to S3 and turned into features there; the training runs
# as a Kubernetes Job on an H100 node, staging its inputs from S3 and
# uploading its model to `artifact_root`; a version is registered only if
# its AUC gate holds, and KServe sends 10% of traffic to it. A CronJob
# watches the inputs for drift.
#
#   mlops plan examples/kubernetes -var s3_endpoint=https://s3.example.com
#
# The cluster needs the NVIDIA device plugin for GPUs and KServe for the
# InferenceService; pods read and write S3 with the credentials in the
# Secret named by `storage_secret`.

variable "env" {
  type    = string
  default = "prod"
  validation {
    condition     = contains(["dev", "staging", "prod"], var.env)
    error_message = "env must be dev, staging or prod"
  }
}

variable "s3_endpoint" {
  type        = string
  description = "The S3 API endpoint mlops and the pods use"
}

variable "kube_context" {
  type    = string
  default = "gpu-cluster"
}

locals {
  prefix = "fraud-${var.env}"
}

provider "s3" {
  region           = "us-east-1"
  endpoint         = var.s3_endpoint
  force_path_style = true
}

provider "kubernetes" {
  context          = var.kube_context
  namespace        = "ml-${var.env}"
  artifact_root    = "s3://${local.prefix}-models/runs"
  storage_endpoint = var.s3_endpoint
  storage_secret   = "s3-credentials"
}

bucket "lake" {
  provider   = s3
  name       = "${local.prefix}-lake"
  versioning = true
}

dataset "transactions" {
  provider = s3
  bucket   = bucket.lake
  source   = "./data/transactions.csv"
  format   = "csv"
  schema {
    column "customer_id" { type = string }
    column "amount" { type = float, min = 0 }
    column "age" { type = int, min = 18, max = 120 }
    column "country" { type = string, allowed = ["de", "fr", "us", "jp"] }
    column "is_fraud" { type = bool }
  }
  check "enough_rows" {
    condition     = self.row_count >= 1000
    error_message = "too few rows to train on"
  }
}

feature_set "txn" {
  provider = s3
  dataset  = dataset.transactions
  entity   = "customer_id"
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

monitor "fraud_drift" {
  provider  = kubernetes
  reference = dataset.transactions
  current   = "s3://${local.prefix}-lake/inference-logs/"
  columns   = ["amount", "age"]
  method    = "psi"
  threshold = 0.2
  schedule  = "0 * * * *"
}

training "fraud" {
  provider = kubernetes
  image    = "ghcr.io/acme/fraud-train:1.4"
  command  = ["python", "train.py", "--epochs", "10"]
  inputs   = {
    train = feature_set.txn
  }
  hyperparameters = {
    learning_rate = 0.01
    max_depth     = 6
  }
  env = { WANDB_MODE = "offline" }
  resources {
    cpu      = 8
    memory   = "32Gi"
    gpus     = 1
    gpu_type = "NVIDIA-H100-80GB-HBM3"
  }
  timeout    = "6h"
  metrics    = ["auc", "precision"]
  retrain_on = [monitor.fraud_drift.drifted]
}

model "fraud" {
  name   = "fraud-detector"
  source = training.fraud
  gate "auc" {
    condition     = training.fraud.metrics.auc >= 0.90
    error_message = "candidate AUC below 0.90"
  }
  gate "precision" {
    condition     = training.fraud.metrics.precision >= 0.5
    error_message = "candidate precision below 0.5"
  }
  aliases = ["champion"]
}

serving "fraud_api" {
  provider = kubernetes
  model    = model.fraud
  runtime  = "kserve"
  image    = "ghcr.io/acme/fraud-serve:2.0"
  env      = { LOG_LEVEL = "info" }
  replicas {
    min = 2
    max = 10
  }
  autoscale {
    metric = "concurrency"
    target = 50
  }
  resources {
    cpu    = 2
    memory = "4Gi"
  }
  rollout {
    strategy        = "canary"
    traffic_percent = 10
  }
  readiness {
    path = "/v2/health/ready"
  }
}

output "endpoint" {
  value = serving.fraud_api.url
}
