"""Kept for train/teacher.py (and swap_eval.py) until their rewrite imports train/shards.py."""

from slimswap.train.shards import FORMAT_VERSION, Shard, load_shard  # noqa: F401
