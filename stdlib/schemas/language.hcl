# Blocks of the language that are not resources: nothing is created for
# them, but their attributes are checked as a kind's are, and
# `mlops schema policy` prints them.

language "policy" {
  description = "A rule the configuration must follow, checked by validate wherever the values are known and by plan for the rest. A policy in a module applies to the whole configuration that calls the module."

  attribute "description" {
    type        = string
    description = "What the rule is for; shown with every violation."
  }
  attribute "resource" {
    type        = string
    description = "The resource kind the rule is about, written bare (`resource = serving`). The condition must hold for every instance of that kind in the whole configuration, modules included, with `self` the instance and `change` what the plan does to it (`change.action`: create, update, replace, delete, forget or no-op). Without it, the condition is checked once per plan."
  }
  attribute "condition" {
    type        = bool
    required    = true
    description = "An expression of the language that must be true. It may use `self` and `change` (with `resource`), `plan` (`plan.creates`, `plan.updates`, `plan.replaces`, `plan.deletes`, `plan.destroy`, and `plan.cost` when a provider has prices: `monthly_delta`, `monthly_delta_min`, `run`, `currency`), and the variables, locals and resources of its module."
  }
  attribute "error_message" {
    type        = string
    required    = true
    description = "What a violation says; it may use what the condition uses."
  }
  attribute "enforcement" {
    type        = string
    allowed     = ["error", "warning", "advisory"]
    default     = "error"
    description = "`error`: validate and plan fail. `warning`: shown, and only `--warnings-as-errors` fails on it. `advisory`: shown as advice, never fails."
  }
}
