# A sentiment model kept as OCI artifacts in a registry: each run that
# passes its gate is pushed as the next version (tag N), the `prod` tag
# moves to it, and the local serving pulls the version back by digest.
#
# Everything it needs runs offline on this machine: a registry (the
# `docker-registry` package, which the test command installs) started with
# the configuration next to this file, python3, and mlops.
#
#   docker-registry serve registry.yml &    # 127.0.0.1:5000, data in /tmp
#   mlops apply
#
# Optionally, a serving runtime image is resolved to a digest at plan time,
# so the plan shows when its tag starts pointing at another image:
#
#   mlops apply -var runtime_image=127.0.0.1:5000/runtimes/python:3.12
#
# The image must be in the registry before planning (a tag that is not
# there is an error naming it); push any image there with your usual tools.
#
# Credentials for a private registry come from `docker login` (the docker
# configuration) or MLOPS_OCI_USERNAME / MLOPS_OCI_PASSWORD.

variable "registry" {
  type        = string
  default     = "127.0.0.1:5000/ml"
  description = "the registry host and repository prefix models are pushed to"
}

variable "runtime_image" {
  type        = string
  default     = null
  description = "a serving runtime image to resolve to a digest at plan time; null for none"
}

variable "quality" {
  type        = number
  default     = 0.9
  description = "what the stand-in trainer reports as its accuracy"
}

variable "pin" {
  type        = string
  default     = null
  description = "a version to pin the model to (a rollback); null follows the newest run"
}

provider "oci" {
  registry = var.registry
}

bucket "lake" {
  name = "reviews-lake"
}

dataset "reviews" {
  bucket = bucket.lake
  source = "./data/reviews.csv"
  format = "csv"
  schema {
    column "review_id" { type = string }
    column "stars" { type = int, min = 1, max = 5 }
    column "words" { type = int, min = 0 }
  }
}

feature_set "review" {
  dataset = dataset.reviews
  entity  = "review_id"
  format  = "jsonl"
  feature "positive" {
    type = bool
    expr = row.stars >= 4
  }
}

training "sentiment" {
  command = ["python3", "train.py"]
  inputs  = {
    train = feature_set.review
  }
  hyperparameters = {
    quality = var.quality
  }
  metrics = ["accuracy"]
}

model "sentiment" {
  provider = oci
  source   = training.sentiment
  version  = var.pin
  aliases  = ["prod"]

  gate "accuracy" {
    condition     = training.sentiment.metrics.accuracy >= 0.8
    error_message = "candidate accuracy below 0.8"
  }
}

data "image" "runtime" {
  count    = var.runtime_image == null ? 0 : 1
  provider = oci
  ref      = var.runtime_image
}

serving "api" {
  model   = model.sentiment
  command = ["python3", "serve.py"]
  env     = var.runtime_image == null ? {} : { RUNTIME_IMAGE = one(data.image.runtime[*].resolved) }
}

output "version" {
  value = model.sentiment.version
}

output "uri" {
  value = model.sentiment.uri
}

output "runtime" {
  value = one(data.image.runtime[*].resolved)
}

output "url" {
  value = serving.api.url
}
