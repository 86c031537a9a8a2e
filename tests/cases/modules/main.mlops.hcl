# A root module that calls a local child module twice and builds on its
# outputs.

module "eu" {
  source = "./modules/lake"
  region = "eu"
}

module "us" {
  source = "./modules/lake"
  region = "us"
}

feature_set "eu" {
  dataset = module.eu.events
  entity  = "id"
  feature "doubled" {
    type = float
    expr = row.amount * 2
  }
}

output "eu_rows" {
  value = module.eu.rows
}

output "eu_features" {
  value = feature_set.eu.row_count
}
