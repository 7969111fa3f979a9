"""Multiple-choice data: examples and splits in metadata order, row checks, writers, JSON Lines."""
