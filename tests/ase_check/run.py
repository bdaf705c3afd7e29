"""Runs every test of scripts/ase-check (the test_*.py files of tests/ase_check) with the
shared counting runner (tests/pyrunner/counting.py): each check and each subtest counted,
the last line "N passed, M failed"; a skipped test counts as failed.
Usage: run.py [-k PATTERN]... [--dir DIR]"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyrunner"))

from counting import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], HERE))
