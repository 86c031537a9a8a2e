# A Parquet dataset (the test writes data.parquet), its features and a drift
# monitor, on the local provider.

bucket "lake" {
  name = "parquet-lake"
}

dataset "events" {
  bucket = bucket.lake
  source = "./data.parquet"
  format = "parquet"
  schema {
    column "age" { type = int, min = 18, nullable = true }
    column "amount" { type = float, min = 0 }
  }
  check "rows" {
    condition     = self.row_count >= 3
    error_message = "need 3 rows, got ${self.row_count}"
  }
}

feature_set "events" {
  dataset = dataset.events
  entity  = "age"
  feature "amount_doubled" {
    type = float
    expr = row.amount * 2
  }
}

output "rows" {
  value = feature_set.events.row_count
}
