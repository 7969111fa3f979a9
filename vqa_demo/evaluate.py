"""``python -m vqa_demo.evaluate``: the evaluation CLI (:mod:`vqa_demo.evaluation.cli`)."""

from vqa_demo.evaluation.cli import cli

if __name__ == "__main__":
    cli()
