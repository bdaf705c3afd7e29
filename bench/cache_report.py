#!/usr/bin/env python3
"""Writes the report of a verdict-cache benchmark run (scripts/bench.sh --cache,
bench/cache.sh) to stdout: BENCHMARKS.md's "--cache" section, from the run's figures
(results.tsv) and the gateways' ase_status JSON before and after the latency rounds.
Standard library only; the statistics are stats.py's.

    bench/cache_report.py --run DIR [facts...]     (bench/cache.sh calls it)
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stats import Results, fmt, jnum, median, met, ms, num, signed_ms  # noqa: E402

MARKER = "scripts/bench.sh --cache output"
LABEL = {
    "base": "baseline: modules off",
    "cache-off": "modules on, cache off (each check waits for the stub)",
    "cache-on": "modules on, cache on (hits)",
}
ON = ("cache-off", "cache-on")
# The aim of issue #25: a hit adds no more than this to the baseline's p99.
AIM_HIT_P99_US = 50


def parse_args(argv):
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--run", required=True)
    for name in ("rounds", "duration", "rate", "identities", "delay-us", "lat-conns", "wrk-conns", "minutes"):
        a.add_argument("--" + name, type=int, default=0)
    for name in ("commit", "dirty", "machine", "nice", "end-loadavg", "command"):
        a.add_argument("--" + name, default="")
    return a.parse_args(argv)


def share(reached, sent):
    """The share of requests whose metadata reached the stub, in percent ("nan" when none
    were sent). Detached sends of the previous round may land in this one: capped at 100."""
    if sent <= 0:
        return "nan"
    return "%.6g" % min(100.0, 100.0 * reached / sent)


def answered(res, phase, cfg):
    """Requests the client got an answer to, over the rounds."""
    if phase == "lat":
        return res.count("lat", cfg, "ok") + res.count("lat", cfg, "non2xx")
    return res.count("tput", cfg, "requests")


# The gateways' status pages bracket the phases: before and after the fixed-rate rounds, and
# at the end of the throughput rounds.
SNAPSHOTS = {"lat": ("before", "after"), "tput": ("after", "end")}


def status_delta(run, cfg, phase, key, sub=None):
    """How much a counter of a gateway's ase_status JSON grew during a phase."""
    first, last = (os.path.join(run, "ase-status-%s-%s.json" % (cfg, s)) for s in SNAPSHOTS[phase])
    return int(num(jnum(last, key, sub)) - num(jnum(first, key, sub)))


def cache_counts(run, cfg):
    """Hits and misses of the fixed-rate rounds."""
    return status_delta(run, cfg, "lat", "cache", "hits"), status_delta(run, cfg, "lat", "cache", "misses")


def hit_ratio(hits, misses):
    return "n/a" if hits + misses == 0 else "%.2f %%" % (100.0 * hits / (hits + misses))


class CacheReport:
    def __init__(self, args, res):
        self.a, self.res = args, res

    def added(self, cfg, key):
        """The median over rounds of the same-round difference from the baseline (µs)."""
        return median(self.res.per_round("lat", cfg, key, "sub"))

    def latency_table(self):
        r = self.res
        out = ["| configuration | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 | sent | errors + unsent |",
               "|---|---|---|---|---|---|---|---|---|"]
        for c in LABEL:
            added = ["—"] * 3 if c == "base" else [signed_ms(self.added(c, k)) for k in ("p50_us", "p99_us", "p999_us")]
            bad = r.count("lat", c, "errors") + r.count("lat", c, "unsent") + r.count("lat", c, "non2xx")
            out.append("| %s | %s | %s | %s | %s | %s | %s | %d | %d |" % (
                LABEL[c], ms(r.med("lat", c, "p50_us")), ms(r.med("lat", c, "p99_us")), ms(r.med("lat", c, "p999_us")),
                added[0], added[1], added[2], r.count("lat", c, "sent"), bad))
        return out

    def metadata_table(self):
        out = ["| configuration | phase | requests answered | checks (gateway's ase_status) "
               "| /ase/request calls the stub received | share |",
               "|---|---|---|---|---|---|"]
        for c in ON:
            for phase, name in (("lat", "fixed rate"), ("tput", "saturation")):
                n, got = answered(self.res, phase, c), self.res.count(phase, c, "stub_calls")
                checks = status_delta(self.a.run, c, phase, "checks")
                out.append("| %s | %s | %d | %d | %d | %s |" % (LABEL[c], name, n, checks, got, fmt(share(got, n), "%.2f %%")))
        return out

    def throughput_table(self):
        r = self.res
        out = ["| configuration | requests/s (median) | vs baseline | non-2xx + socket errors |", "|---|---|---|---|"]
        for c in LABEL:
            ratio = "—" if c == "base" else fmt(median(r.per_round("tput", c, "rps", "div")), "%.3f")
            out.append("| %s | %s | %s | %d |" % (LABEL[c], fmt(r.med("tput", c, "rps"), "%.0f"), ratio,
                                                  r.count("tput", c, "non2xx") + r.count("tput", c, "errors")))
        return out

    def aim(self):
        p99 = self.added("cache-on", "p99_us")
        ok = p99 != "nan" and num(p99) <= AIM_HIT_P99_US
        hits, misses = cache_counts(self.a.run, "cache-on")
        return [
            "- A cache hit adds at most 0.05 ms p99 to the baseline: %s (%s ms, the median of the rounds' "
            "differences)%s." % (met(ok), signed_ms(p99), self.spread_note("cache-on", "p99_us")),
            "- Metadata reached the stub for every request of the fixed-rate rounds (100 %%): %s "
            "(at saturation: see below)." % met(self.all_reached("lat")),
            "- Cache hit ratio of the cache-on gateway in the fixed-rate rounds (ase_status `cache`): %s "
            "(%d hits, %d misses)." % (hit_ratio(hits, misses), hits, misses),
        ]

    def spread_note(self, cfg, key):
        """When the rounds' differences spread wider than the aim, the verdict is noise: say so."""
        d = [num(x) for x in self.res.per_round("lat", cfg, key, "sub")]
        if len(d) < 2 or max(d) - min(d) <= AIM_HIT_P99_US:
            return ""
        return "; not conclusive: the rounds' differences range from %s to %s ms, wider than the aim" % (
            signed_ms(min(d)), signed_ms(max(d)))

    def all_reached(self, phase):
        """Whether the stub received a check for every answered request, both gateways."""
        return all(self.res.count(phase, c, "stub_calls") >= answered(self.res, phase, c) > 0 for c in ON)

    def render(self):
        a = self.a
        head = [
            "<!-- BEGIN %s: generated, do not edit by hand -->" % MARKER,
            "## Results: the verdict cache (hybrid mode)",
            "",
            "Commit `%s`%s, `%s`, %d min; %s; nice %s; load average at the end %s." % (
                a.commit, a.dirty, a.command.strip(), a.minutes, a.machine, a.nice, a.end_loadavg),
            "",
            "An ASE stub that answers every call after %d µs (`build/bench/loadgen delay`), %d clients "
            "(`Authorization: Bearer client-N` in turn, one path), NGINX 1.28 (build/release), one gateway "
            "worker. %d alternating rounds of %d s per configuration after a warm-up that shows every "
            "client once; medians over the rounds, differences taken round by round." % (
                a.delay_us, a.identities, a.rounds, a.duration),
            "",
            "### Aim (issue #25)",
            "",
        ]
        body = [
            "",
            "### Latency at %d requests/s (build/bench/loadgen rate, %d connections, ms)" % (a.rate, a.lat_conns),
            "",
        ] + self.latency_table() + [
            "",
            "### Metadata that reached the stub",
            "",
        ] + self.metadata_table() + [
            "",
            "### Throughput at saturation (wrk -t1 -c%d, bench/identities.lua)" % a.wrk_conns,
            "",
        ] + self.throughput_table() + ["", "<!-- END %s -->" % MARKER]
        return "\n".join(head + self.aim() + body) + "\n"


def main(argv):
    a = parse_args(argv)
    sys.stdout.write(CacheReport(a, Results.load(os.path.join(a.run, "results.tsv"))).render())


if __name__ == "__main__":
    main(sys.argv[1:])
