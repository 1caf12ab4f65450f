"""slimswap: face swapping where a small model swaps almost as well as a big one."""

__version__ = "0.1.0"
