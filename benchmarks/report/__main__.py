"""``python -m benchmarks.report RESULTS_DIR [options]``: the same as ``earlyexp report``."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
