# A configuration run from CI, as teams run Terraform from CI: the state in
# an S3 bucket (locked with a conditional write), a plan posted on every
# pull request, and the reviewed kind of plan applied on merge to main.
# See .github/workflows/mlops.yml and .gitlab-ci.yml next to this file.

mlops {
  required_version = ">= 0.1"
  backend "s3" {
    bucket = "acme-mlops-state"
    key    = "fraud/ci"
    region = "eu-west-1"
  }
}

variable "team" {
  type    = string
  default = "fraud"
}

provider "s3" {
  region = "eu-west-1"
}

bucket "lake" {
  provider   = s3
  name       = "${var.team}-ci-lake"
  versioning = true
}

dataset "events" {
  provider = s3
  bucket   = bucket.lake
  source   = "./data/events.csv"
  schema {
    column "id" { type = string }
    column "amount" { type = float, min = 0 }
    column "country" { type = string }
  }
}

output "events_version" {
  value = dataset.events.version
}
