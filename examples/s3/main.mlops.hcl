# A bucket on any S3 API: AWS, MinIO, Ceph, or a local test server.
# Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...), never from this file.
#
#   mlops apply examples/s3 -var s3_endpoint=http://127.0.0.1:9000

variable "s3_endpoint" {
  type        = string
  description = "The S3 API endpoint, such as http://127.0.0.1:9000"
}

variable "team" {
  type    = string
  default = "fraud"
}

variable "force_destroy" {
  type    = bool
  default = false
}

provider "s3" {
  region   = "us-east-1"
  endpoint = var.s3_endpoint
}

bucket "lake" {
  provider      = s3
  name          = "${var.team}-lake"
  versioning    = true
  force_destroy = var.force_destroy
  tags          = {
    team    = var.team
    purpose = "training data"
  }
  lifecycle_rule {
    prefix      = "tmp/"
    expire_days = 7
  }
  lifecycle_rule {
    prefix      = "scratch/"
    expire_days = 1
  }
}

dataset "events" {
  provider = s3
  bucket   = bucket.lake
  source   = "./data/events.csv" # uploaded content-addressed; multipart when large
  format   = "csv"
  schema {
    column "event_id" { type = string }
    column "amount" { type = float, min = 0 }
    column "country" { type = string, allowed = ["de", "fr", "us", "jp"] }
  }
  check "enough_rows" {
    condition     = self.row_count >= 100
    error_message = "only ${self.row_count} events"
  }
}

output "uri" {
  value = bucket.lake.uri
}

output "events" {
  value = dataset.events.uri
}
