# A bucket with no extras and a dataset, for S3-compatible stores that
# implement only the core API (s3s-fs in the tests).

variable "s3_endpoint" {
  type = string
}

variable "bucket_name" {
  type    = string
  default = "plain-bucket"
}

variable "versioning" {
  type    = bool
  default = false
}

provider "s3" {
  endpoint = var.s3_endpoint
}

bucket "plain" {
  provider      = s3
  name          = var.bucket_name
  versioning    = var.versioning
  force_destroy = true
}

dataset "numbers" {
  provider = s3
  bucket   = bucket.plain
  source   = "./data/numbers.csv"
  format   = "csv"
  schema {
    column "x" { type = int, min = 0 }
  }
}
