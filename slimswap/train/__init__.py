"""Training: data shards, losses and the teacher trainer."""
