# A secret used everywhere a secret can go: a bucket tag, a training's
# command, hyperparameters and environment, a check's and a gate's
# error_message, and an output. The scripts record the environment they get.

variable "token" {
  type      = string
  sensitive = true
}

variable "min_auc" {
  type    = number
  default = 0.5
}

variable "fail" {
  type    = bool
  default = false
}

bucket "lake" {
  name = "secret-lake"
  tags = { owner = var.token }
}

dataset "numbers" {
  bucket = bucket.lake
  source = "./numbers.csv"
  schema {
    column "x" { type = float }
  }
  check "rows" {
    condition     = self.row_count >= 1
    error_message = "no rows for ${var.token}"
  }
}

training "t" {
  command         = ["python3", "train.py", "--token", var.token]
  inputs          = { train = dataset.numbers }
  hyperparameters = { api_key = var.token, learning_rate = 0.1, fail = var.fail }
  env             = { API_TOKEN = var.token }
  metrics         = ["auc"]
  timeout         = "2m"
}

model "m" {
  source = training.t
  gate "auc" {
    condition     = training.t.metrics.auc >= var.min_auc
    error_message = "auc below the bar set for ${var.token}"
  }
}

serving "api" {
  model   = model.m
  command = ["python3", "serve.py"]
  env     = { API_TOKEN = var.token }
}

output "tok" {
  value     = var.token
  sensitive = true
}
