"""``python -m vqa_demo.compare_runs``: saved runs side by side, as Markdown (:mod:`vqa_demo.evaluation.run_report`)."""

import sys

from vqa_demo.evaluation.run_report import main, parse_args

if __name__ == "__main__":
    sys.exit(main(parse_args()))
