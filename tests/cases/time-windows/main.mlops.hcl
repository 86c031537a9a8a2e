# Per-customer aggregates over time windows, point-in-time correct.

bucket "lake" {
  name = "windows-lake"
}

dataset "transactions" {
  bucket = bucket.lake
  source = "./transactions.csv"
  schema {
    column "customer_id" { type = string }
    column "event_time" { type = timestamp }
    column "amount" { type = float, min = 0 }
    column "merchant" { type = string }
  }
}

feature_set "activity" {
  dataset   = dataset.transactions
  entity    = "customer_id"
  timestamp = "event_time"

  feature "large" {
    type = bool
    expr = row.amount >= 100
  }
  aggregate "spend_7d" {
    function = "sum"
    column   = "amount"
    window   = "7d"
  }
  aggregate "transactions_before" {
    function  = "count"
    exclusive = true
  }
  aggregate "merchants_30d" {
    function = "count_distinct"
    column   = "merchant"
    window   = "30d"
  }
  aggregate "previous_amount" {
    function  = "last"
    column    = "amount"
    exclusive = true
  }
}

output "uri" {
  value = feature_set.activity.uri
}

# Labels joined to the features as they were when each label was observed.
dataset "labels" {
  bucket = bucket.lake
  source = "./labels.csv"
  schema {
    column "customer_id" { type = string }
    column "observed_at" { type = timestamp }
    column "churned" { type = bool }
  }
}

training_set "churn" {
  labels    = dataset.labels
  entity    = "customer_id"
  timestamp = "observed_at"
  features  = [feature_set.activity]
}

training_set "recent" {
  labels    = dataset.labels
  entity    = "customer_id"
  timestamp = "observed_at"
  features  = [feature_set.activity]
  max_age   = "2d"
  format    = "jsonl"
}

output "churn_uri" {
  value = training_set.churn.uri
}

output "recent_uri" {
  value = training_set.recent.uri
}
