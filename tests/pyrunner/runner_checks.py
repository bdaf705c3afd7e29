"""The runner's own checks, for each suite's run.py (its test_runner.py mixes them in with
RUN_PY set): a failing check, an error, a failing subtest and a failing setUpClass are each
counted and shown with their traceback, the last line is "N passed, M failed", and the exit
status is not 0. A runner that breaks on the first failure reports nothing exactly when it
matters."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

SAMPLE = textwrap.dedent('''
    import unittest

    class Sample(unittest.TestCase):
        def test_a_pass(self):
            self.assertEqual(1, 1)

        def test_b_failure(self):
            self.assertEqual("expected", "got", "a failing check")

        def test_c_error(self):
            raise RuntimeError("an error in a test")

        def test_d_subtests(self):
            for i in range(3):
                with self.subTest(i=i):
                    self.assertNotEqual(i, 1, "subtest one fails")

        def test_e_pass_after_the_failures(self):
            pass

    class BrokenSetUp(unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            raise RuntimeError("setUpClass broke")

        def test_never_runs(self):
            pass
''')


class RunnerChecks:
    """Mixed into a unittest.TestCase that sets RUN_PY, the run.py under test."""

    RUN_PY = ""

    def run_on(self, source: str):
        with tempfile.TemporaryDirectory(prefix="ngx-ase-runner-") as d:
            with open(os.path.join(d, "test_sample.py"), "w") as f:
                f.write(source)
            return subprocess.run([sys.executable, "-B", self.RUN_PY, "--dir", d],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)

    def test_failures_are_counted_and_shown(self):
        r = self.run_on(SAMPLE)
        lines = r.stdout.splitlines()
        # passed: test_a, subtests 0 and 2, test_e; failed: test_b, test_c, subtest 1, setUpClass
        self.assertEqual(lines[-1], "4 passed, 4 failed", r.stdout)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("a failing check", r.stdout)
        self.assertIn("RuntimeError: an error in a test", r.stdout)
        self.assertIn("subtest one fails", r.stdout)
        self.assertIn("setUpClass broke", r.stdout)
        self.assertIn("ok    test_sample.Sample.test_e_pass_after_the_failures", r.stdout)
        self.assertNotIn("AttributeError", r.stdout, "the runner itself must not break")
        self.assertEqual(sum(1 for l in lines if l.startswith("FAIL  ")), 4, r.stdout)

    def test_all_passing(self):
        r = self.run_on("import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n        pass\n")
        self.assertEqual(r.stdout.splitlines()[-1], "1 passed, 0 failed", r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_nothing_ran_is_not_a_pass(self):
        r = self.run_on("")
        self.assertEqual(r.stdout.splitlines()[-1], "0 passed, 0 failed", r.stdout)
        self.assertNotEqual(r.returncode, 0, r.stdout)
