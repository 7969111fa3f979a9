"""Training side of the workbench: synthetic data, fine-tuning and comparison scripts."""
