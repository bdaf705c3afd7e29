"""This suite's run.py counts and shows failures (the checks: tests/pyrunner/runner_checks.py)."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyrunner"))

from runner_checks import RunnerChecks  # noqa: E402


class Runner(RunnerChecks, unittest.TestCase):
    RUN_PY = os.path.join(HERE, "run.py")


if __name__ == "__main__":
    unittest.main()
