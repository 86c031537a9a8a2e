variable "region" {
  type = string
}

bucket "lake" {
  name = "lake-${var.region}"
}

dataset "events" {
  bucket = bucket.lake
  source = "./events.csv"
  format = "csv"
  schema {
    column "id" { type = string }
    column "amount" { type = float, min = 0 }
  }
}

output "events" {
  value = dataset.events
}

output "rows" {
  value = dataset.events.row_count
}
