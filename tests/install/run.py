"""Runs every test of the installer (python3 -m unittest discover -s tests/install) and counts
each check: a test without subtests counts once, a test with subtests (the end-to-end checks
of harness.InstallCase) counts each subtest. Prints "ok"/"FAIL" per check and last the line
"N passed, M failed" that scripts/test.sh reads; a skipped end-to-end test counts as failed,
so a machine that cannot run them never reports a pass. Usage: run.py [-k PATTERN]..."""

from __future__ import annotations

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class CountingResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checks_passed = self.checks_failed = 0
        self._with_subtests = set()

    def _line(self, ok: bool, name: str, err=None) -> None:
        if ok:
            self.checks_passed += 1
        else:
            self.checks_failed += 1
        self.stream.write(f"{'ok  ' if ok else 'FAIL'}  {name}\n")
        if err is not None:
            text = self._exc_info_to_string(err, None).rstrip().splitlines()[-40:]
            self.stream.write("".join(f"      | {l}\n" for l in text))
        self.stream.flush()

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        self._with_subtests.add(test.id())
        self._line(err is None, subtest._message if isinstance(subtest._message, str) else subtest.id(), err)

    def addSuccess(self, test):
        super().addSuccess(test)
        if test.id() not in self._with_subtests:
            self._line(True, test.id())

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test.id(), err)

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test.id(), err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(False, f"{test.id()}: skipped: {reason}")


def main(argv) -> int:
    patterns = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-k"]
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    suite = loader.discover(HERE, top_level_dir=HERE)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=0, resultclass=CountingResult)
    result = runner.run(suite)
    print()
    print(f"{result.checks_passed} passed, {result.checks_failed} failed")
    return 0 if result.checks_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
