"""The statistics of scripts/bench.sh: medians over rounds, same-round ratios and
differences against the baseline, and the number formats of the report.

A run's raw figures are `results.tsv`, one per line: PHASE CFG ROUND KEY VALUE (tab
separated). Figures travel as strings, written the way awk writes numbers (integers as
such, anything else with six significant digits), so that a report rewritten from an old
run is the report that run wrote.
"""

import json
import math
import re

_NUMBER_PREFIX = re.compile(r"\s*[-+]?(inf(inity)?|nan|(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)", re.IGNORECASE)
_INT_MAX = 2**31 - 1


def num(s):
    """A figure as a number: the number at the start of the string, 0 if none (awk's rule)."""
    if isinstance(s, (int, float)):
        return float(s)
    m = _NUMBER_PREFIX.match(s or "")
    return float(m.group(0)) if m else 0.0


def text(x):
    """A computed number as a figure: an integer as such, else six significant digits."""
    if math.isnan(x):
        return "nan"
    if x.is_integer() and -_INT_MAX <= x <= _INT_MAX:
        return str(int(x))
    return "%.6g" % x


def _order(s):
    """Sort order of figures: numerically, what is not a number first, ties by the text."""
    x = num(s)
    return (0, 0.0, s) if math.isnan(x) else (1, x, s)


def median(figures):
    """The median of figures (strings): the middle one as written, or the mean of the two
    middle ones; "nan" when there is none."""
    a = sorted(figures, key=_order)
    n = len(a)
    if n == 0:
        return "nan"
    if n % 2:
        return a[n // 2]
    return text((num(a[n // 2 - 1]) + num(a[n // 2])) / 2)


class Results:
    """The raw figures of a run (results.tsv)."""

    def __init__(self, rows):
        self.rows = rows  # (phase, cfg, round, key, value), all strings, in file order

    @classmethod
    def load(cls, path):
        rows = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                if len(fields) >= 5:
                    rows.append(tuple(fields[:5]))
        return cls(rows)

    def vals(self, phase, cfg, key):
        """Every figure of one phase, configuration and key, in file order."""
        return [v for p, c, _, k, v in self.rows if p == phase and c == cfg and k == key]

    def med(self, phase, cfg, key):
        """The median of that figure over the rounds."""
        return median(self.vals(phase, cfg, key))

    def has(self, cfg):
        """Whether the run measured this configuration."""
        return bool(self.vals("tput", cfg, "rps"))

    def per_round(self, phase, cfg, key, op, ref="base"):
        """Each round's figure divided by ("div") or minus ("sub") the figure of `ref` in
        the same round, in round order; rounds missing either are left out. A division by
        a zero figure gives "nan"."""
        v = {}
        last = 0.0
        for p, c, r, k, x in self.rows:
            if p == phase and k == key and c in (cfg, ref):
                v[(c, r)] = x
                last = max(last, num(r))
        out = []
        for i in range(1, int(last) + 1):
            r = str(i)
            if (cfg, r) in v and (ref, r) in v:
                b, x = num(v[(ref, r)]), num(v[(cfg, r)])
                if op == "div":
                    out.append("nan" if b == 0 else text(x / b))
                else:
                    out.append(text(x - b))
        return out

    def all3(self, cfg):
        """The median over rounds of gateway + stub/backend + wrk CPU per 1,000 requests."""
        keys = ("cpu_ms_per_1k", "aux_cpu_ms_per_1k", "wrk_cpu_ms_per_1k")
        sums = {}
        for p, c, r, k, x in self.rows:
            if p == "tput" and c == cfg and k in keys:
                sums[r] = sums.get(r, 0.0) + num(x)
        return median([text(s) for s in sums.values()])

    def count(self, phase, cfg, key):
        """The sum of a count over the rounds (non-2xx, errors, unsent), as an integer."""
        return int(sum(num(x) for x in self.vals(phase, cfg, key)))


def _missing(x):
    return x in ("nan", "")


def fmt(x, f):
    """A figure in a printf format, "n/a" when there is none."""
    return "n/a" if _missing(x) else f % num(x)


def fmt_list(figures, f):
    """Figures in a printf format, separated by spaces."""
    return " ".join(f % num(x) for x in figures)


def ms(us):
    """Microseconds as milliseconds, three decimals."""
    return "n/a" if _missing(us) else "%.3f" % (num(us) / 1000)


def signed_ms(us):
    """The same with a sign."""
    return "n/a" if _missing(us) else "%+.3f" % (num(us) / 1000)


def ge(x, y):
    return x != "nan" and num(x) >= num(y)


def le(x, y):
    return x != "nan" and num(x) <= num(y)


def met(ok):
    return "**met**" if ok else "**missed**"


def jnum(path, key, sub=None):
    """A number from the flat ase_status JSON (as text; "0" when absent): the first
    `"key":N` in the file, or the first `"sub":N` inside the first `"key":{...}`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            body = f.read()
    except OSError:
        return "0"
    if sub is not None:
        m = re.search('"%s":{[^}\n]*}' % re.escape(key), body)
        if not m:
            return "0"
        body, key = m.group(0), sub
    m = re.search('"%s":([0-9]*)' % re.escape(key), body)
    return (m.group(1) if m else "") or "0"


def node_calls(path):
    """The calls of each node of an ase_status JSON, in the page's order ([] when the file is
    missing or not JSON): how a cluster's calls were shared."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            nodes = json.load(f).get("nodes", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [int(n.get("calls", 0)) for n in nodes if isinstance(n, dict)]
