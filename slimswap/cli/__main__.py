"""`python -m slimswap.cli ...`: the same command as the `slimswap` console script."""

from slimswap.cli import app

app()
