"""Explanations of an answer: captum-style attributions, pooling-weight maps and heatmap painting."""
