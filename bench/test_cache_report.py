"""Unit tests of bench/cache_report.py on a small made-up run: python3 -m unittest discover -s bench"""

import os
import tempfile
import unittest

from cache_report import MARKER, CacheReport, hit_ratio, parse_args, share
from stats import Results

P99 = {"base": 600, "cache-off": 2500, "cache-on": 640}


def rows(cfg, rnd, p99, stub_calls, answered=6000):
    return [
        ("lat", cfg, rnd, "sent", answered), ("lat", cfg, rnd, "ok", answered), ("lat", cfg, rnd, "non2xx", 0),
        ("lat", cfg, rnd, "errors", 0), ("lat", cfg, rnd, "unsent", 0), ("lat", cfg, rnd, "p50_us", p99 // 4),
        ("lat", cfg, rnd, "p99_us", p99), ("lat", cfg, rnd, "p999_us", p99 * 2),
        ("lat", cfg, rnd, "stub_calls", stub_calls),
        ("tput", cfg, rnd, "requests", 30000), ("tput", cfg, rnd, "rps", "10000" if cfg == "base" else "5000"),
        ("tput", cfg, rnd, "non2xx", 0), ("tput", cfg, rnd, "errors", 0),
        ("tput", cfg, rnd, "stub_calls", 0 if cfg == "base" else 30000),
    ]


class MadeUpRun(unittest.TestCase):
    def report(self, on_calls=6000, hit_p99=640, status=True, noise=(0, 0, 0)):
        d = tempfile.mkdtemp()
        data = []
        for r, n in zip(("1", "2", "3"), noise):
            data += rows("base", r, P99["base"], 0)
            data += rows("cache-off", r, P99["cache-off"], 6000)
            data += rows("cache-on", r, hit_p99 + n, on_calls)
        if status:
            for when, checks, hits, misses in (("before", 2000, 1000, 1000), ("after", 20000, 18990, 1010),
                                               ("end", 110000, 108990, 1010)):
                with open(os.path.join(d, "ase-status-cache-on-%s.json" % when), "w") as f:
                    f.write('{"checks":%d,"cache":{"hits":%d,"misses":%d,"stale":0,"evictions":0},"nodes":[]}'
                            % (checks, hits, misses))
        args = parse_args(["--run", d, "--rounds", "3", "--duration", "3", "--rate", "2000", "--identities", "1000",
                           "--delay-us", "1000", "--commit", "abc123", "--machine", "2 CPUs"])
        return CacheReport(args, Results([tuple(str(x) for x in row) for row in data])).render()

    def test_the_section_carries_its_markers_and_the_commit(self):
        text = self.report()
        self.assertTrue(text.startswith("<!-- BEGIN %s:" % MARKER))
        self.assertTrue(text.rstrip().endswith("<!-- END %s -->" % MARKER))
        self.assertIn("Commit `abc123`", text)

    def test_added_latency_is_the_same_round_difference_from_the_baseline(self):
        text = self.report()
        self.assertIn("| modules on, cache off (each check waits for the stub) | 0.625 | 2.500 | 5.000 | +0.475 | +1.900 | +3.800 |", text)
        self.assertIn("| modules on, cache on (hits) | 0.160 | 0.640 | 1.280 | +0.010 | +0.040 | +0.080 |", text)

    def test_a_hit_within_0_05_ms_p99_meets_the_aim_and_beyond_misses_it(self):
        self.assertIn("0.05 ms p99 to the baseline: **met** (+0.040 ms", self.report(hit_p99=640))
        self.assertIn("0.05 ms p99 to the baseline: **missed** (+0.051 ms", self.report(hit_p99=651))

    def test_rounds_spread_wider_than_the_aim_make_the_verdict_not_conclusive(self):
        self.assertNotIn("not conclusive", self.report(noise=(0, 10, 20)))
        self.assertIn("**met** (+0.040 ms, the median of the rounds' differences); not conclusive: the rounds' "
                      "differences range from -0.060 to +2.040 ms, wider than the aim.",
                      self.report(noise=(-100, 0, 2000)))

    def test_metadata_share_is_stub_calls_over_answered_requests(self):
        text = self.report(on_calls=5940)
        self.assertIn("| modules on, cache on (hits) | fixed rate | 18000 | 18000 | 17820 | 99.00 % |", text)
        self.assertIn("| modules on, cache on (hits) | saturation | 90000 | 90000 | 90000 | 100.00 % |", text)
        self.assertIn("every request of the fixed-rate rounds (100 %): **missed**", text)
        self.assertIn("every request of the fixed-rate rounds (100 %): **met**", self.report())

    def test_the_hit_ratio_counts_only_the_measured_rounds(self):
        self.assertIn("99.94 % (17990 hits, 10 misses)", self.report())
        self.assertIn("n/a (0 hits, 0 misses)", self.report(status=False))

    def test_throughput_is_reported_against_the_baseline(self):
        self.assertIn("| modules on, cache on (hits) | 5000 | 0.500 | 0 |", self.report())

    def test_share_and_ratio_edge_cases(self):
        self.assertEqual(share(0, 0), "nan")
        self.assertEqual(share(101, 100), "100")  # a late detached send of the previous round
        self.assertEqual(share(99, 100), "99")
        self.assertEqual(hit_ratio(0, 0), "n/a")
        self.assertEqual(hit_ratio(3, 1), "75.00 %")


if __name__ == "__main__":
    unittest.main()
