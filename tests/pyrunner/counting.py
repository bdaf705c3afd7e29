"""The test runner of the Python suites (tests/install, tests/ase_check): runs every test_*.py
of a directory and counts each check: a test without subtests counts once, a test with
subtests counts each subtest. Prints "ok"/"FAIL" per check (with the traceback of a failure)
and last the line "N passed, M failed" that scripts/test.sh reads; exits 1 when any failed
or none ran. A skipped test counts as failed, so a machine that cannot run a suite never
reports a pass.

A suite's run.py calls main(argv, its own directory). Arguments: [-k PATTERN]... [--dir DIR]
(--dir runs the tests of another directory; the runner's own test uses it)."""

from __future__ import annotations

import os
import sys
import unittest


class CountingResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checks_passed = self.checks_failed = 0
        self._with_subtests = set()

    def _line(self, ok: bool, name: str, test=None, err=None) -> None:
        if ok:
            self.checks_passed += 1
        else:
            self.checks_failed += 1
        self.stream.write(f"{'ok  ' if ok else 'FAIL'}  {name}\n")
        if err is not None:
            # The test goes with it: unittest's traceback cleaning reads test.failureException.
            text = self._exc_info_to_string(err, test).rstrip().splitlines()[-60:]
            self.stream.write("".join(f"      | {line}\n" for line in text))
        self.stream.flush()

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        self._with_subtests.add(test.id())
        self._line(err is None, subtest.id(), test, err)

    def addSuccess(self, test):
        super().addSuccess(test)
        if test.id() not in self._with_subtests:
            self._line(True, test.id())

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test.id(), test, err)

    def addError(self, test, err):
        super().addError(test, err)  # a failing setUpClass comes as an _ErrorHolder: it has an id too
        self._line(False, test.id(), test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(False, f"{test.id()}: skipped: {reason}")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line(False, f"{test.id()}: passed, but was expected to fail")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._line(True, test.id())


def main(argv, default_dir: str) -> int:
    patterns = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-k"]
    directory = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--dir"), default_dir)
    directory = os.path.abspath(directory)
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    sys.path.insert(0, directory)
    suite = loader.discover(directory, top_level_dir=directory)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=0, resultclass=CountingResult)
    result = runner.run(suite)
    print()
    print(f"{result.checks_passed} passed, {result.checks_failed} failed")
    return 0 if result.checks_failed == 0 and result.checks_passed > 0 else 1
