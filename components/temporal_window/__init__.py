"""Assembles the rolling window of spans into train / eval / catalog (temporal holdout)."""
