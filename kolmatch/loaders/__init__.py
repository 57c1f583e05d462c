"""Loaders: import-format readers and validation, the synthetic market, real-data adapters."""
