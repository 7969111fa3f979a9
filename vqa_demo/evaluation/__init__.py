"""Evaluation: the runner behind training-time validation and the CLI, metrics, text metrics, sharding across processes."""
