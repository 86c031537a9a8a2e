# A training that takes a few seconds, for tests that interrupt an apply
# while it runs, plus an independent bucket.

variable "token" {
  type      = string
  default   = "not-a-secret"
  sensitive = true
}

bucket "lake" {
  name = "slow-lake"
}

bucket "other" {
  name = "independent"
}

dataset "numbers" {
  bucket = bucket.lake
  source = "./numbers.csv"
  format = "csv"
  schema {
    column "x" { type = float, min = 0 }
  }
  check "some_rows" {
    condition     = self.row_count >= 3
    error_message = "need at least 3 rows, got ${self.row_count}"
  }
}

training "slow" {
  command = ["python3", "slow_train.py"]
  inputs  = { train = dataset.numbers }
  env     = { API_TOKEN = var.token }
  metrics = ["score"]
  timeout = "2m"
}

output "run" {
  value = training.slow.run_id
}
