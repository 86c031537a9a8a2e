# Schemas of data sources, provider configurations and state backends.

# What several schemas share, written once: a kind, data source, provider
# or backend takes every attribute of `shared "NAME"` with
# `include = ["NAME"]`, after its own.

shared "s3_connection" {
  attribute "region" {
    type        = string
    default     = "us-east-1"
    description = "The region."
  }
  attribute "endpoint" {
    type        = string
    description = "For S3-compatible stores, such as http://127.0.0.1:9000."
  }
  attribute "force_path_style" {
    type        = bool
    default     = false
    description = "Address buckets by path rather than by host name."
  }
  attribute "profile" {
    type        = string
    description = "The AWS profile to take credentials from."
  }
}

shared "remote_limits" {
  attribute "connect_timeout" {
    type        = string
    format      = "duration"
    default     = "10s"
    description = "How long to wait for a connection to the server or store."
  }
  attribute "request_timeout" {
    type        = string
    format      = "duration"
    default     = "60s"
    description = "How long to wait for the answer to one request; a server that stops answering fails the call after it."
  }
  attribute "max_attempts" {
    type        = number
    default     = 3
    min         = 1
    max         = 10
    integer     = true
    description = "How often a request that failed for a passing reason (a timeout, throttling, a 5xx answer) is tried, with backoff."
  }
}

data "model" {
  description = "An existing registered model version, by alias or version."
  providers   = ["local", "mlflow", "oci"]

  attribute "name" {
    type        = string
    required    = true
    format      = "registry_name"
    description = "The registered model name."
  }
  attribute "alias" {
    type        = string
    description = "Read the version this alias points at."
  }
  attribute "version" {
    type         = string
    computed     = true
    configurable = true
    description  = "Read this version; the latest when neither alias nor version is set."
  }
  attribute "uri" {
    type        = string
    computed    = true
    description = "Where the version's artifacts are."
    stores_data = true
  }
  attribute "run_id" {
    type        = string
    computed    = true
    description = "The run that produced the version."
  }
  attribute "metrics" {
    type        = map(number)
    computed    = true
    description = "The metrics its run reported: a baseline for a candidate's gate."
  }
}

data "image" {
  description = "A container image tag resolved to its digest."
  providers   = ["oci"]
  identity    = "digest"

  attribute "ref" {
    type        = string
    required    = true
    description = "The image reference, such as ghcr.io/acme/train:1.4."
  }
  attribute "digest" {
    type        = string
    computed    = true
    description = "The manifest digest (sha256:...)."
  }
  attribute "resolved" {
    type        = string
    computed    = true
    description = "The reference pinned by digest."
  }
}

data "dataset" {
  description = "Data in object storage not managed here, versioned by its listing."
  providers   = ["local", "s3"]

  attribute "uri" {
    type        = string
    required    = true
    format      = "uri_or_path"
    description = "Where the data lives."
    stores_data = true
  }
  attribute "version" {
    type        = string
    computed    = true
    description = "A hash of the objects' checksums and listing."
  }
  attribute "size_bytes" {
    type        = number
    computed    = true
    description = "Total size of the objects."
  }
}

provider "local" {
  description = "The embedded default: the local disk and local processes."
  attribute "root" {
    type        = string
    default     = ".mlops"
    description = "Where objects, registries and run outputs are kept, relative to the configuration."
  }
}

provider "s3" {
  description = "Any S3 API. Credentials come from the standard AWS chain, never from the file."
  include     = ["s3_connection", "remote_limits"]
  block "prices" {
    max_items   = 1
    description = "What storage costs, for the estimates `plan` shows: a dataset's data per month."
    attribute "currency" {
      type        = string
      default     = "USD"
      description = "The currency the prices are in, as the plan shows it."
    }
    attribute "storage_gib_month" {
      type        = number
      default     = 0
      min         = 0
      description = "Per GiB stored and month."
    }
  }
}

provider "kubernetes" {
  description = "A Kubernetes API server, through kubeconfig or in-cluster configuration."
  block "prices" {
    max_items   = 1
    description = "What the cluster's capacity costs, for the estimates `plan` shows: trainings and batch predictions per run (at most their timeout), servings per month (730 hours, at min and max replicas)."
    attribute "currency" {
      type        = string
      default     = "USD"
      description = "The currency the prices are in, as the plan shows it."
    }
    attribute "gpu_hour" {
      type        = map(number)
      default     = {}
      description = "Per GPU and hour, by GPU model (the `gpu_type` of resources), such as { \"nvidia-h100\" = 4.1 }; `default` for a GPU with no gpu_type."
    }
    attribute "spot_gpu_hour" {
      type        = map(number)
      default     = {}
      description = "Per GPU and hour on spot capacity (`spot = true`), by GPU model; the on-demand price where a model has none."
    }
    attribute "cpu_hour" {
      type        = number
      default     = 0
      min         = 0
      description = "Per core and hour."
    }
    attribute "memory_gib_hour" {
      type        = number
      default     = 0
      min         = 0
      description = "Per GiB of memory and hour."
    }
  }
  attribute "context" {
    type        = string
    description = "The kubeconfig context; in-cluster configuration when absent."
  }
  attribute "namespace" {
    type        = string
    description = "The namespace resources are created in; by default the kubeconfig context's namespace, the service account's in a pod, else `default`."
  }
  attribute "kubeconfig" {
    type        = string
    description = "A kubeconfig file instead of the default one (or $KUBECONFIG)."
  }
  attribute "artifact_root" {
    type        = string
    description = "Where training outputs are uploaded, such as s3://acme-ml/runs; each run gets RUN_ID/ under it."
  }
  attribute "storage_endpoint" {
    type        = string
    description = "The S3 endpoint pods use to stage inputs, outputs and models (for S3-compatible stores)."
  }
  attribute "storage_secret" {
    type        = string
    description = "A Secret in the namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for staging; none uses the pods' own identity."
  }
  attribute "storage_image" {
    type        = string
    default     = "amazon/aws-cli:2.22.35"
    description = "The image with the AWS CLI that stages inputs, uploads outputs and fetches models."
  }
  attribute "gpu_node_label" {
    type        = string
    default     = "nvidia.com/gpu.product"
    description = "The node label that names a node's GPU model; `gpu_type` selects nodes by it."
  }
  attribute "training_runtime" {
    type        = string
    default     = "torch-distributed"
    description = "The Kubeflow Trainer runtime (a ClusterTrainingRuntime, or a TrainingRuntime in the namespace) that each distributed run's own TrainingRuntime is derived from."
  }
  attribute "upload_timeout" {
    type        = string
    format      = "duration"
    default     = "10m"
    description = "How long a finished run's outputs may take to upload to artifact_root (the pod's termination grace period)."
  }
  attribute "kserve_mode" {
    type        = string
    allowed     = ["serverless", "raw"]
    default     = "serverless"
    description = "How KServe deploys predictors: serverless (Knative: revisions, traffic splitting) or raw (a Deployment with an autoscaler; KServe's RawDeployment, Standard from 0.16)."
  }
  attribute "knative_features" {
    type        = list(string)
    allowed     = ["init-containers", "node-selector", "tolerations", "hpa-autoscaler"]
    default     = []
    description = "The Knative Serving features the cluster has turned on (config-features: kubernetes.podspec-init-containers, -nodeselector, -tolerations; the HPA autoscaler extension), which serverless KServe needs for an OCI model, GPU placement and cpu/memory autoscaling."
  }
  attribute "spot_node_selector" {
    type        = map(string)
    default     = { "karpenter.sh/capacity-type" = "spot" }
    description = "The node labels that select spot capacity for trainings with `spot = true` (GKE: cloud.google.com/gke-spot = \"true\"; EKS managed groups: eks.amazonaws.com/capacityType = \"SPOT\")."
  }
  attribute "spot_tolerations" {
    type        = list(map(string))
    default     = []
    description = "Tolerations for the spot nodes' taints (key, operator, value, effect), such as AKS's kubernetes.azure.com/scalesetpriority = spot:NoSchedule."
  }
  attribute "monitor_image" {
    type        = string
    description = "The image that recomputes drift for monitors (default: the mlops image of this version)."
  }
  attribute "oras_image" {
    type        = string
    default     = "ghcr.io/oras-project/oras:v1.2.2"
    description = "The image with the ORAS CLI that pulls model versions kept in an OCI registry, by digest."
  }
  attribute "registry_secret" {
    type        = string
    description = "A kubernetes.io/dockerconfigjson Secret with the credentials of the OCI registry models are pulled from."
  }
  attribute "rollout_timeout" {
    type        = string
    format      = "duration"
    default     = "10m"
    description = "How long apply waits for a serving rollout to be ready."
  }
  attribute "force_conflicts" {
    type        = bool
    default     = false
    description = "Take over fields another field manager owns instead of failing (drift the plan showed is always taken back)."
  }
}

provider "mlflow" {
  description = "An MLflow tracking and registry server."
  include     = ["remote_limits"]
  attribute "url" {
    type        = string
    required    = true
    description = "The server's base URL."
  }
  attribute "token" {
    type        = string
    sensitive   = true
    description = "A bearer token; keep it in a sensitive variable. Defaults to MLFLOW_TRACKING_TOKEN (or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)."
  }
  attribute "experiment" {
    type        = string
    description = "The experiment that records each registered training run; defaults to mlops/MODEL_NAME."
  }
  attribute "artifact_location" {
    type        = string
    description = "Where experiments mlops creates keep artifacts, such as mlflow-artifacts:/mlops to upload through the server's artifact proxy; defaults to the server's own setting."
  }
}

provider "oci" {
  description = "An OCI distribution registry."
  include     = ["remote_limits"]
  attribute "registry" {
    type        = string
    description = "Where models are kept: a registry host and optional path, such as registry.example.com/models. Image references name their own registry."
  }
  attribute "username" {
    type        = string
    description = "The user to log in as; by default credentials come from MLOPS_OCI_USERNAME/MLOPS_OCI_PASSWORD or the docker configuration (docker login)."
  }
  attribute "password" {
    type        = string
    sensitive   = true
    description = "The password or token; keep it in a sensitive variable."
  }
  attribute "insecure" {
    type        = bool
    default     = false
    description = "Use plain HTTP. Loopback registries (localhost, 127.0.0.1) always use it, as docker does."
  }
}

backend "local" {
  description = "State in a directory next to the configuration."
  attribute "path" {
    type        = string
    default     = ".mlops/state"
    description = "The state directory."
  }
}

backend "s3" {
  description = "State in an S3 bucket, locked with a conditional write."
  include     = ["s3_connection", "remote_limits"]
  attribute "bucket" {
    type        = string
    required    = true
    description = "The bucket holding state."
  }
  attribute "key" {
    type        = string
    required    = true
    description = "The key prefix of this configuration's state."
  }
}
