# A dataset stored in S3, read by a local feature set and a local training:
# the local provider stages S3 data through the s3 provider.

variable "s3_endpoint" {
  type = string
}

provider "s3" {
  endpoint = var.s3_endpoint
}

bucket "lake" {
  provider      = s3
  name          = "staging-lake"
  force_destroy = true
}

dataset "numbers" {
  provider = s3
  bucket   = bucket.lake
  source   = "./numbers.csv"
  format   = "csv"
  schema {
    column "x" { type = float, min = 0 }
  }
}

feature_set "doubled" {
  dataset = dataset.numbers
  entity  = "x"
  format  = "jsonl"
  feature "twice" {
    type = float
    expr = row.x * 2
  }
}

training "count" {
  command = ["python3", "count.py"]
  inputs  = {
    raw      = dataset.numbers
    features = feature_set.doubled
  }
  metrics = ["raw_rows", "feature_rows", "twice_sum"]
}

output "metrics" {
  value = training.count.metrics
}

feature_set "in_s3" {
  provider = s3
  dataset  = dataset.numbers
  entity   = "x"
  feature "squared" {
    type = float
    expr = row.x * row.x
  }
}

output "features_in_s3" {
  value = feature_set.in_s3.uri
}
