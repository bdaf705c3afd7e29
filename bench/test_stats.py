"""Unit tests of bench/stats.py: python3 -m unittest discover -s bench"""

import os
import tempfile
import unittest

from stats import Results, fmt, fmt_list, ge, jnum, le, median, ms, node_calls, num, signed_ms, text


def results(*rows):
    return Results([tuple(str(f) for f in r) for r in rows])


class Numbers(unittest.TestCase):
    def test_text_writes_integers_whole_and_the_rest_with_six_digits(self):
        self.assertEqual(text(3.0), "3")
        self.assertEqual(text(-0.0), "0")
        self.assertEqual(text(0.1 + 0.2), "0.3")
        self.assertEqual(text(123456.5), "123456")
        self.assertEqual(text(1234567.5), "1.23457e+06")
        self.assertEqual(text(3e9), "3e+09", "past a 32-bit integer, as awk")
        self.assertEqual(text(float("nan")), "nan")

    def test_num_reads_the_number_at_the_start(self):
        self.assertEqual(num("12.5"), 12.5)
        self.assertEqual(num("1e3x"), 1000.0)
        self.assertEqual(num(""), 0.0)
        self.assertEqual(num("abc"), 0.0)
        self.assertNotEqual(num("nan"), num("nan"))


class Medians(unittest.TestCase):
    def test_odd_gives_the_middle_figure_as_written(self):
        self.assertEqual(median(["3.50", "1", "20"]), "3.50")

    def test_even_gives_the_mean_of_the_middle_two(self):
        self.assertEqual(median(["4", "1", "2", "3"]), "2.5")
        self.assertEqual(median(["10", "2"]), "6")

    def test_order_is_numeric_not_textual(self):
        self.assertEqual(median(["9", "10", "100"]), "10")

    def test_none_is_nan(self):
        self.assertEqual(median([]), "nan")


class PerRound(unittest.TestCase):
    RES = results(
        ("tput", "base", 1, "rps", 100), ("tput", "stub", 1, "rps", 50),
        ("tput", "base", 2, "rps", 200), ("tput", "stub", 2, "rps", 150),
        ("tput", "base", 3, "rps", 0), ("tput", "stub", 3, "rps", 10),
        ("tput", "stub", 4, "rps", 99),  # no baseline in round 4
        ("tput", "native", 1, "rps", 40),
    )

    def test_ratios_to_the_baseline_of_the_same_round(self):
        self.assertEqual(self.RES.per_round("tput", "stub", "rps", "div"), ["0.5", "0.75", "nan"])

    def test_differences_and_another_reference(self):
        self.assertEqual(self.RES.per_round("tput", "stub", "rps", "sub"), ["-50", "-50", "10"])
        self.assertEqual(self.RES.per_round("tput", "stub", "rps", "div", "native"), ["1.25"])

    def test_vals_med_and_has(self):
        self.assertEqual(self.RES.vals("tput", "stub", "rps"), ["50", "150", "10", "99"])
        self.assertEqual(self.RES.med("tput", "stub", "rps"), "74.5")
        self.assertTrue(self.RES.has("native"))
        self.assertFalse(self.RES.has("refused"))

    def test_all3_sums_the_three_cpu_figures_per_round(self):
        res = results(
            ("tput", "stub", 1, "cpu_ms_per_1k", "10.5"), ("tput", "stub", 1, "aux_cpu_ms_per_1k", "2"),
            ("tput", "stub", 1, "wrk_cpu_ms_per_1k", "3"), ("tput", "stub", 1, "rps", "1000"),
            ("tput", "stub", 2, "cpu_ms_per_1k", "20"), ("tput", "stub", 2, "aux_cpu_ms_per_1k", "1"),
            ("tput", "stub", 2, "wrk_cpu_ms_per_1k", "1"),
        )
        self.assertEqual(res.all3("stub"), "18.75")

    def test_count(self):
        res = results(("lat", "stub", 1, "unsent", 2), ("lat", "stub", 2, "unsent", 3))
        self.assertEqual(res.count("lat", "stub", "unsent"), 5)
        self.assertEqual(res.count("lat", "stub", "errors"), 0)

    def test_load_reads_tab_separated_rows(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "results.tsv")
            with open(path, "w") as f:
                f.write("rss\tstub\t0\tcold_kib\t8296\ntput\tbase\t1\trps\t59080.43\n\n")
            res = Results.load(path)
        self.assertEqual(res.vals("rss", "stub", "cold_kib"), ["8296"])
        self.assertEqual(res.med("tput", "base", "rps"), "59080.43")


class Formats(unittest.TestCase):
    def test_fmt(self):
        self.assertEqual(fmt("0.4949", "%.2f"), "0.49")
        self.assertEqual(fmt("3.25", "%+.1f µs"), "+3.2 µs")
        self.assertEqual(fmt("nan", "%.2f"), "n/a")
        self.assertEqual(fmt("", "%.2f"), "n/a")

    def test_fmt_list(self):
        self.assertEqual(fmt_list(["0.5", "0.755", "nan"], "%.2f"), "0.50 0.76 nan")
        self.assertEqual(fmt_list([], "%.2f"), "")

    def test_ms(self):
        self.assertEqual(ms("1234"), "1.234")
        self.assertEqual(signed_ms("-56"), "-0.056")
        self.assertEqual(signed_ms("nan"), "n/a")

    def test_comparisons_fail_on_nan(self):
        self.assertTrue(ge("1.0", 0.97))
        self.assertFalse(ge("nan", 0.97))
        self.assertTrue(le("7.9", 8))
        self.assertFalse(le("nan", 8))


class StatusJson(unittest.TestCase):
    BODY = ('{"checks":12,"verdicts":{"allow":10,"block":0,"fail_open":2},'
            '"fail_open_by_cause":{"refused":2,"timeout":0},"breaker_trips":1,'
            '"nodes":[{"calls":99,"checks":5}]}')

    def test_first_number_of_a_key_or_of_a_key_inside_an_object(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.json")
            with open(path, "w") as f:
                f.write(self.BODY)
            self.assertEqual(jnum(path, "checks"), "12")
            self.assertEqual(jnum(path, "verdicts", "fail_open"), "2")
            self.assertEqual(jnum(path, "fail_open_by_cause", "refused"), "2")
            self.assertEqual(jnum(path, "reports_sent"), "0")
            self.assertEqual(jnum(path, "verdicts", "skip"), "0")
            self.assertEqual(jnum(os.path.join(d, "missing.json"), "checks"), "0")

    def test_the_calls_of_each_node(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.json")
            with open(path, "w") as f:
                f.write('{"checks":9,"nodes":[{"url":"a","calls":3},{"url":"b","calls":4},{"url":"c","state":"untracked"}]}')
            self.assertEqual(node_calls(path), [3, 4, 0])
            with open(path, "w") as f:
                f.write("not json")
            self.assertEqual(node_calls(path), [])
            self.assertEqual(node_calls(os.path.join(d, "missing.json")), [])


if __name__ == "__main__":
    unittest.main()
