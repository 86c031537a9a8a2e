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
