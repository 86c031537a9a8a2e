# Schemas of the machine-learning kinds: feature_set, training, model,
# model_version (read only), serving and monitor. See storage.hcl for the
# meaning of each setting.

kind "feature_set" {
  description = "Features computed from a dataset's rows by typed expressions: on this machine (local, s3), or in the cluster as an Indexed Job over the dataset's files (kubernetes)."
  providers   = ["local", "s3", "kubernetes"]

  attribute "shards" {
    type        = number
    only_on     = ["kubernetes"]
    default     = 4
    min         = 1
    max         = 1000
    integer     = true
    description = "How many pods compute the features, each over its share of the dataset's files (one Parquet part each)."
  }
  attribute "timeout" {
    type        = string
    format      = "duration"
    only_on     = ["kubernetes"]
    default     = "6h"
    description = "How long the shards may take together."
  }

  attribute "dataset" {
    type        = ref(dataset)
    required    = true
    description = "The dataset whose rows the features are computed from."
  }
  attribute "entity" {
    type        = string
    required    = true
    description = "The column that identifies an entity (checked against the dataset schema)."
  }
  attribute "bucket" {
    type        = ref(bucket)
    description = "Where to materialise the features; defaults to the dataset's bucket."
  }
  attribute "description" {
    type        = string
    description = "What the features are for."
  }
  attribute "format" {
    type        = string
    default     = "parquet"
    allowed     = ["parquet", "jsonl"]
    description = "How the features are written: `parquet` (zstd-compressed, the features' types as Parquet types), or `jsonl` (one JSON object per row)."
  }
  attribute "timestamp" {
    type        = string
    description = "The column of each row's event time (a timestamp column of the dataset). Needed by `aggregate` blocks; written to the features as a timestamp."
  }
  block "feature" {
    labels      = ["name"]
    description = "One feature, computed from one row."
    attribute "type" {
      type        = string
      required    = true
      allowed     = ["int", "float", "bool", "string"]
      description = "The feature's type; the expression must produce it."
    }
    attribute "expr" {
      type        = any
      required    = true
      context     = "row"
      description = "The value for one row; `row.COLUMN` reads the dataset's columns."
    }
    attribute "description" {
      type        = string
      description = "What the feature means."
    }
  }
  block "aggregate" {
    labels      = ["name"]
    description = "A time-window aggregation per entity, point-in-time correct: for each row, over the rows of the same entity at or before its time (strictly before with `exclusive`) and within `window`."
    attribute "function" {
      type        = string
      required    = true
      allowed     = ["count", "sum", "mean", "min", "max", "count_distinct", "last"]
      description = "count (rows, or non-null values of `column`), sum, mean, min, max (of a number column), count_distinct, or last (the latest non-null value of `column`)."
    }
    attribute "column" {
      type        = string
      description = "The column aggregated. Every function but count needs one."
    }
    attribute "window" {
      type        = string
      format      = "duration"
      description = "How far back from each row's time, such as \"1h\" or \"7d\". Unset: all earlier history."
    }
    attribute "exclusive" {
      type        = bool
      default     = false
      description = "Leave out the rows at the row's own time (the row itself included): only what was known strictly before it."
    }
    attribute "description" {
      type        = string
      description = "What the aggregate means."
    }
  }
  attribute "version" {
    type        = string
    computed    = true
    description = "Hash of the input version and the feature definitions."
  }
  attribute "uri" {
    type        = string
    computed    = true
    description = "Where the materialised features live."
    stores_data = true
    lineage     = true
  }
  attribute "row_count" {
    type        = number
    computed    = true
    description = "Number of entities materialised."
    lineage     = true
  }
}

kind "training_set" {
  description = "Labels joined point-in-time to feature sets: for each label row, each feature set's latest row of the same entity at or before the label's time."
  providers   = ["local", "s3"]

  attribute "labels" {
    type        = ref(dataset)
    required    = true
    description = "The label rows: an entity, the time the label was observed, the label."
  }
  attribute "entity" {
    type        = string
    required    = true
    description = "The labels' entity column; it is matched with each feature set's entity."
  }
  attribute "timestamp" {
    type        = string
    required    = true
    description = "The labels' time column (a timestamp column): features are taken as they were at this time."
  }
  attribute "features" {
    type        = list(ref(feature_set))
    required    = true
    description = "The feature sets joined; each needs a `timestamp`. Their features and aggregates become columns."
  }
  attribute "max_age" {
    type        = string
    format      = "duration"
    description = "Feature rows older than this before the label's time are not used (the columns are null). Unset: any age."
  }
  attribute "format" {
    type        = string
    default     = "parquet"
    allowed     = ["parquet", "jsonl"]
    description = "How the training set is written: `parquet` (zstd) or `jsonl`."
  }
  attribute "description" {
    type        = string
    description = "What the training set is for."
  }
  attribute "version" {
    type        = string
    computed    = true
    description = "The content hash of the training set written."
  }
  attribute "uri" {
    type        = string
    computed    = true
    description = "Where the training set lives."
    stores_data = true
    lineage     = true
  }
  attribute "row_count" {
    type        = number
    computed    = true
    description = "Number of label rows."
    lineage     = true
  }
}

# What every run of the user's code (a training, a batch prediction) takes.
shared "run_settings" {
  attribute "env" {
    type        = map(string)
    default     = {}
    description = "Extra environment variables; sensitive values stay sensitive."
  }
  attribute "timeout" {
    type        = string
    format      = "duration"
    default     = "24h"
    description = "How long the run may take."
  }
}

kind "training" {
  description = "One training run: the user's code run on inputs with hyperparameters, reporting metrics."
  providers   = ["local", "kubernetes"]
  identity    = "run_id"
  include     = ["run_settings"]

  attribute "command" {
    type        = list(string)
    required_on = ["local"]
    description = "The program to run; its working directory is the configuration's directory."
    lineage     = true
  }
  attribute "image" {
    type        = string
    only_on     = ["kubernetes"]
    required_on = ["kubernetes"]
    description = "The container image; resolved to a digest at plan time."
    lineage     = true
  }
  attribute "inputs" {
    type        = map(ref(dataset, feature_set, training_set))
    default     = {}
    description = "Named inputs, each given to the run as MLOPS_INPUT_<NAME>."
  }
  attribute "hyperparameters" {
    type        = map(any)
    default     = {}
    description = "Given to the run as MLOPS_HYPERPARAMETERS (JSON) and MLOPS_HP_<NAME>."
    lineage     = true
  }
  attribute "metrics" {
    type        = list(string)
    default     = []
    reads_as    = "metrics"
    description = "Metrics the run must report. Read back as `training.NAME.metrics.METRIC` (a number known after apply)."
    lineage     = true
  }
  attribute "spot" {
    type        = bool
    only_on     = ["kubernetes"]
    description = "Run on spot (preemptible) capacity: the provider's spot node selector and tolerations. A Job's pod taken back by the cloud is replaced without counting as a failure. Unset is on-demand."
  }
  attribute "retrain_on" {
    type        = list(bool)
    default     = []
    description = "Conditions (such as monitor.NAME.drifted) that make the plan retrain when they turn true."
  }
  block "resources" {
    max_items   = 1
    description = "What the run needs."
    attribute "cpu" {
      type        = any
      format      = "cpu"
      description = "Cores (2) or millicores (\"500m\")."
    }
    attribute "memory" {
      type        = string
      format      = "memory"
      description = "A quantity such as \"32Gi\"."
    }
    attribute "gpus" {
      type        = number
      default     = 0
      min         = 0
      integer     = true
      description = "Number of GPUs."
    }
    attribute "gpu_type" {
      type        = string
      description = "The GPU model, such as \"nvidia-h100\"."
    }
  }
  block "distributed" {
    max_items   = 1
    only_on     = ["kubernetes"]
    description = "Run on several nodes (compiled to a Kubeflow TrainJob)."
    attribute "nodes" {
      type        = number
      required    = true
      min         = 1
      integer     = true
      description = "Number of nodes."
    }
    attribute "procs_per_node" {
      type        = number
      default     = 1
      min         = 1
      integer     = true
      description = "Processes per node, usually one per GPU."
    }
  }
  attribute "run_id" {
    type        = string
    computed    = true
    description = "The run's identifier."
    lineage     = true
  }
  attribute "fingerprint" {
    type        = string
    computed    = true
    description = "Hash of the code, inputs, hyperparameters and image that produced the run."
    lineage     = true
  }
  attribute "artifact_uri" {
    type        = string
    computed    = true
    description = "Where the run's output artifacts are stored."
    stores_data = true
    lineage     = true
  }
  attribute "duration_seconds" {
    type        = number
    computed    = true
    description = "How long the run took; the plan's cost estimate expects the next run to take as long."
  }
}

# What a model and each of its versions share (see plumbing.hcl for `shared`).
shared "registered_version" {
  attribute "uri" {
    type        = string
    computed    = true
    description = "Where the version's artifacts are (for a model, its current version's)."
    stores_data = true
    lineage     = true
  }
}

kind "model" {
  description = "A registered model: a new version is registered from its source training only when every gate holds."
  providers   = ["local", "mlflow", "oci"]
  retained    = true
  include     = ["registered_version"]

  attribute "name" {
    type        = string
    format      = "registry_name"
    description = "The registered name; defaults to the block's name."
    lineage     = true
  }
  attribute "source" {
    type        = ref(training)
    required    = true
    description = "The training whose artifacts become the next version."
  }
  attribute "aliases" {
    type        = list(string)
    default     = []
    description = "Aliases moved to each new version (a planned, reviewable change)."
    lineage     = true
  }
  attribute "description" {
    type        = string
    description = "What the model does."
  }
  attribute "tags" {
    type        = map(string)
    default     = {}
    description = "Tags set on every version."
  }
  block "gate" {
    labels      = ["name"]
    description = "A condition a candidate must meet to be registered."
    attribute "condition" {
      type        = bool
      required    = true
      description = "Usually on `training.NAME.metrics.METRIC`; only declared metrics may be used."
    }
    attribute "error_message" {
      type        = string
      required    = true
      description = "Shown when the gate fails."
    }
  }
  attribute "version" {
    type         = string
    computed     = true
    configurable = true
    description  = "The current version. Set it to pin an existing version (a rollback): no new version is registered and the aliases move to it."
    lineage      = true
  }
  attribute "versions" {
    type        = map(ref(model_version))
    computed    = true
    description = "Every registered version, by version number."
  }
  attribute "alias_history" {
    type        = list(map(string))
    computed    = true
    description = "Every alias move mlops made (alias, from, to, at), oldest first: where to roll back to."
  }
}

kind "model_version" {
  description = "One registered version of a model (read through model.NAME.versions[\"N\"])."
  providers   = ["local", "mlflow", "oci"]
  declarable  = false
  include     = ["registered_version"]

  attribute "version" {
    type     = string
    computed = true
  }
  attribute "run_id" {
    type     = string
    computed = true
  }
  attribute "fingerprint" {
    type     = string
    computed = true
  }
}

kind "serving" {
  description = "An endpoint serving a model version: a local process, a Kubernetes Deployment or a KServe InferenceService."
  providers   = ["local", "kubernetes"]
  identity    = "live_version"

  attribute "model" {
    type        = ref(model, model_version)
    required    = true
    description = "The model (its current version) or one version: model.NAME.versions[\"7\"]."
  }
  attribute "runtime" {
    type        = string
    allowed     = ["kserve", "deployment", "local"]
    required_on = ["kubernetes"]
    description = "How the model is served. Defaults to `local` on the local provider."
    lineage     = true
  }
  attribute "image" {
    type        = string
    only_on     = ["kubernetes"]
    required_on = ["kubernetes"]
    description = "The serving image (Kubernetes)."
  }
  attribute "command" {
    type        = list(string)
    only_on     = ["local"]
    required_on = ["local"]
    description = "The server to start (local runtime); it gets MLOPS_MODEL_DIR, MLOPS_MODEL_VERSION and PORT."
  }
  attribute "env" {
    type        = map(string)
    default     = {}
    description = "Extra environment variables."
  }
  block "replicas" {
    max_items   = 1
    description = "How many copies to run."
    attribute "min" {
      type        = number
      default     = 1
      min         = 0
      integer     = true
      description = "Fewest replicas."
    }
    attribute "max" {
      type        = number
      default     = 1
      min         = 1
      integer     = true
      description = "Most replicas."
    }
  }
  block "autoscale" {
    max_items   = 1
    only_on     = ["kubernetes"]
    description = "Scale between the replica bounds on a metric."
    attribute "metric" {
      type        = string
      required    = true
      allowed     = ["cpu", "memory", "concurrency", "rps"]
      description = "What to scale on."
    }
    attribute "target" {
      type        = number
      required    = true
      min         = 1
      integer     = true
      description = "The target value per replica (a cpu or memory percentage, requests or concurrent requests); autoscalers take a whole number of at least 1."
    }
  }
  block "resources" {
    max_items   = 1
    description = "What each replica needs."
    attribute "cpu" {
      type        = any
      format      = "cpu"
      description = "Cores (2) or millicores (\"500m\")."
    }
    attribute "memory" {
      type        = string
      format      = "memory"
      description = "A quantity such as \"4Gi\"."
    }
    attribute "gpus" {
      type        = number
      default     = 0
      min         = 0
      integer     = true
      description = "Number of GPUs."
    }
    attribute "gpu_type" {
      type        = string
      description = "The GPU model."
    }
  }
  block "rollout" {
    max_items   = 1
    description = "How a new version replaces the live one."
    attribute "strategy" {
      type        = string
      default     = "all_at_once"
      allowed     = ["canary", "blue_green", "all_at_once"]
      description = "canary (kserve), blue_green (kserve, local) or all_at_once."
    }
    attribute "traffic_percent" {
      type        = number
      format      = "percent"
      description = "Share of traffic for the new version during a canary."
    }
  }
  block "readiness" {
    max_items   = 1
    description = "How to tell the server is ready for traffic: GET `path` answers 200. Without it, a local or Deployment serving probes GET /health, and a KServe predictor gets traffic as soon as its port opens (W0104)."
    attribute "path" {
      type        = string
      default     = "/health"
      description = "The path that answers 200 once the model is loaded."
    }
    attribute "initial_delay" {
      type        = string
      format      = "duration"
      default     = "0s"
      description = "How long after the container starts the first probe comes (Kubernetes)."
    }
    attribute "period" {
      type        = string
      format      = "duration"
      default     = "10s"
      description = "How often the probe comes (Kubernetes)."
    }
    attribute "failure_threshold" {
      type        = number
      default     = 3
      min         = 1
      integer     = true
      description = "Failed probes in a row before the pod is taken out of service (Kubernetes)."
    }
  }
  attribute "url" {
    type        = string
    computed    = true
    description = "The endpoint's base URL."
    lineage     = true
  }
  attribute "live_version" {
    type        = string
    computed    = true
    description = "The model version receiving traffic."
    lineage     = true
  }
  attribute "ready_replicas" {
    type        = number
    computed    = true
    description = "Replicas ready to serve."
  }
}

kind "batch_prediction" {
  description = "A model version run over a dataset, writing predictions: the deploy-as-a-batch-job half of serving. The run gets MLOPS_MODEL_DIR, MLOPS_INPUT_DIR (and MLOPS_INPUT_FORMAT) and MLOPS_OUTPUT_DIR: on the local provider `command` runs as a process; on Kubernetes `image` runs as a Job, and the predictions are uploaded under the provider's artifact_root."
  providers   = ["local", "kubernetes"]
  include     = ["run_settings"]

  attribute "model" {
    type        = ref(model, model_version)
    required    = true
    description = "The model (its current version) or one version: model.NAME.versions[\"7\"]. Given to the run as MLOPS_MODEL_DIR."
  }
  attribute "input" {
    type        = ref(dataset, feature_set, training_set)
    required    = true
    description = "The rows to predict on, given to the run as MLOPS_INPUT_DIR (and their format as MLOPS_INPUT_FORMAT)."
  }
  attribute "command" {
    type        = list(string)
    required_on = ["local"]
    description = "The program that writes predictions into MLOPS_OUTPUT_DIR; its working directory is the configuration's directory (on Kubernetes, the image's entrypoint when not set)."
    lineage     = true
  }
  attribute "image" {
    type        = string
    only_on     = ["kubernetes"]
    required_on = ["kubernetes"]
    description = "The container image that writes the predictions."
    lineage     = true
  }
  attribute "schedule" {
    type        = string
    format      = "cron"
    only_on     = ["kubernetes"]
    description = "A cron schedule (\"0 6 * * *\"): the predictions are made again on it by a CronJob, each run uploading under its Job's name; refresh reads the newest run's version."
  }
  attribute "shards" {
    type        = number
    only_on     = ["kubernetes"]
    default     = 1
    min         = 1
    max         = 1000
    integer     = true
    description = "How many pods make the predictions, each over its share of the input's files (MLOPS_SHARD of MLOPS_SHARD_COUNT), uploading under shard-N/ of the run's folder. Not with `schedule`."
  }
  block "resources" {
    max_items   = 1
    only_on     = ["kubernetes"]
    description = "What the prediction pod asks for."
    attribute "cpu" {
      type        = any
      format      = "cpu"
      description = "CPU cores, as a number or a quantity (\"500m\")."
    }
    attribute "memory" {
      type        = string
      format      = "memory"
      description = "Memory, as a quantity (\"4Gi\")."
    }
    attribute "gpus" {
      type        = number
      default     = 0
      min         = 0
      integer     = true
      description = "GPUs, as a limit."
    }
    attribute "gpu_type" {
      type        = string
      description = "The GPU model, selected by the provider's gpu_node_label."
    }
  }
  attribute "description" {
    type        = string
    description = "What the predictions are for."
  }
  attribute "version" {
    type        = string
    computed    = true
    description = "The content hash of the predictions written."
  }
  attribute "uri" {
    type        = string
    computed    = true
    description = "Where the predictions live."
    stores_data = true
    lineage     = true
  }
  attribute "run_id" {
    type        = string
    computed    = true
    description = "The run that wrote them."
    lineage     = true
  }
  attribute "fingerprint" {
    type        = string
    computed    = true
    description = "Hash of the command, environment, code files, model version and input version."
    lineage     = true
  }
  attribute "files" {
    type        = number
    computed    = true
    description = "How many files of predictions the run wrote."
  }
  attribute "size_bytes" {
    type        = number
    computed    = true
    description = "Their total size."
  }
}

kind "monitor" {
  description = "Drift between a reference dataset and current data, per column."
  providers   = ["local", "kubernetes"]
  identity    = "drifted"

  attribute "reference" {
    type        = ref(dataset)
    required    = true
    description = "The dataset the model was trained on."
  }
  attribute "current" {
    type        = string
    required    = true
    format      = "uri_or_path"
    description = "Where current data (such as inference logs) lives."
  }
  attribute "columns" {
    type        = list(string)
    required    = true
    description = "Columns to compare (checked against the reference schema)."
  }
  attribute "method" {
    type        = string
    default     = "psi"
    allowed     = ["psi", "ks", "wasserstein", "kl_div"]
    description = "The drift statistic; ks and wasserstein need numeric columns."
  }
  attribute "threshold" {
    type        = number
    required    = true
    min         = 0
    description = "A column drifts when its score exceeds this."
  }
  attribute "schedule" {
    type        = string
    format      = "cron"
    only_on     = ["kubernetes"]
    description = "A cron schedule for the CronJob that recomputes drift."
  }
  attribute "scores" {
    type        = map(number)
    computed    = true
    description = "The drift score per column, computed at refresh."
    lineage     = true
  }
  attribute "drifted" {
    type        = bool
    computed    = true
    description = "Whether any column's score exceeds the threshold."
    lineage     = true
  }
}
