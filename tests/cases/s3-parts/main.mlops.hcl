# A dataset of three files stored in S3, and a local feature set computed
# from it: for tests that tamper with the stored objects and count what a
# new version sends.

variable "s3_endpoint" {
  type = string
}

variable "bucket" {
  type = string
}

variable "factor" {
  type    = number
  default = 2
}

provider "s3" {
  endpoint = var.s3_endpoint
}

bucket "lake" {
  provider      = s3
  name          = var.bucket
  force_destroy = true
}

dataset "parts" {
  provider = s3
  bucket   = bucket.lake
  source   = "./parts/"
  format   = "csv"
  schema {
    column "x" { type = float }
  }
}

feature_set "scaled" {
  dataset = dataset.parts
  entity  = "x"
  feature "scaled" {
    type = float
    expr = row.x * var.factor
  }
}

output "parts" {
  value = dataset.parts.uri
}

output "rows" {
  value = feature_set.scaled.row_count
}
