# A serving whose server takes a while to become healthy (SERVE_DELAY
# seconds, read from the environment), for tests that kill an apply while it
# starts. A blue/green rollout keeps the old server until the new one is up.

variable "generation" {
  type    = number
  default = 1
}

training "t" {
  command         = ["python3", "train.py"]
  hyperparameters = { generation = var.generation }
  metrics         = ["score"]
}

model "m" {
  source = training.t
}

serving "api" {
  model   = model.m
  command = ["python3", "serve.py"]
  rollout {
    strategy = "blue_green"
  }
}
