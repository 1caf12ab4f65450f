"""Swappers: anything that turns aligned target crops into crops of the source identity."""
