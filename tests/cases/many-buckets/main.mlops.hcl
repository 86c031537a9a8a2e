# Enough buckets that a markdown plan must be cut to fit a pull-request comment.

bucket "shard" {
  count      = 1500
  name       = "shard-${count.index}"
  versioning = true
  tags       = { team = "platform", purpose = "a long enough tag value to make every bucket's diff a few lines" }
}
