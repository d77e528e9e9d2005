"""Checks that a benchmark printed its figures and that they are sane.

    python3 scripts/lib/bench_figures.py NAME < OUTPUT

NAME is a script of scripts/bench/ (without .sh) or a `cargo bench` target (`bench:NAME`).
Every figure a bench prints must be there (its line, as many times as the smoke run
prints it), parse as a finite number, and be above zero where zero would mean nothing
was measured (`p_` groups: calls, recordings, throughput, times, memory) or at least
zero where zero is a fair outcome (`z_` groups: 429s), or only finite (`f_`: a memory
delta, which can be negative). Values are never
held against a target: smoke runs are tiny, and targets live in the full runs' figures.
Exit 0 when all hold; 1 with one line per missing or insane figure.
"""

import math
import re
import sys

N = r"-?(?:\d+(?:\.\d+)?|inf|nan|NaN)"  # a number as printed, insane ones included

# name: [(regex with named groups, how many lines must match)]
SPECS = {
    "budget": [
        (rf"^(?:ours|naive)\s+(?:right|2x high)\s+(?:with|without)\s+(?P<p_calls>{N})\s+(?P<z_429s>{N})"
         rf"\s+(?P<z_share>{N})%\s+(?P<p_util>{N})%\s+(?P<p_archived>{N})\s+(?P<p_calls_per_rec>{N})$", 8),
    ],
    "lag": [
        (rf"^(?:ours|naive)\s+(?P<p_util>{N})%\s+(?P<p_archived>{N})\s+(?P<z_429s>{N})\s+(?P<p_p50>{N})s"
         rf"\s+(?P<p_p95>{N})s\s+(?P<p_p99>{N})s\s+(?P<p_max>{N})s\s+(?P<p_target>{N})s\s+(?P<p_ratio>{N})"
         rf"\s+(?:yes|no)\s+(?P<p_calls_per_rec>{N})$", 2),
    ],
    "memory": [
        (rf"^\s*(?P<p_workers>{N})\s+(?P<p_size>{N}) MiB\s+(?:multipart|streamed)\s+(?P<p_recordings>{N})"
         rf"\s+(?P<p_bytes>{N}) MiB\s+(?P<p_rss>{N}) MiB\s+(?P<p_bound>{N}) MiB$", 2),
    ],
    "replicas": [
        (rf"^per \S+(?:, no headers)?\s+(?P<p_replicas>{N})\s+(?:one, shared in Redis|each local \(naive\))"
         rf"\s+(?P<p_calls>{N})\s+(?P<z_429s>{N})\s+(?P<z_share>{N})%\s+(?P<p_util>{N})%"
         rf"\s+(?P<p_archived>{N})\s+(?P<p_calls_per_rec>{N})$", 2),
    ],
    "dataplane": [
        (rf"^(?:archiver (?:SHA256|CRC64NVME|none)|rclone copyurl x8)\s+(?P<p_objects>{N})\s+(?P<p_mib>{N})"
         rf"\s+(?P<p_seconds>{N})\s+(?P<p_mib_per_s>{N})\s+(?P<p_rss>{N}) MiB\s+(?P<z_cpu>{N})%$", 4),
        (rf"^throughput ratio to rclone: SHA256 (?P<p_sha256>{N}), CRC64NVME (?P<p_crc>{N}), none (?P<p_none>{N})$", 1),
    ],
    "scale": [
        (rf"^\s+(?P<p_slice>{N})\s+(?P<p_in_ledger>{N})\s+(?P<p_discovered>{N})\s+(?P<p_us>{N})"
         rf"\s+(?P<p_rss>{N})$", 20),
        (rf"^discovery, first slice vs last slice\s+(?P<p_first>{N}) vs (?P<p_last>{N}) us/recording"
         rf" \(ratio (?P<p_ratio>{N})\)$", 2),
        (rf"^re-reading the whole day, all known\s+(?P<p_us>{N}) us/recording \((?P<p_skipped>{N})", 2),
        (rf"^ledger de-duplication on insert\s+(?P<p_us>{N}) us/recording \((?P<p_offered>{N}) offered", 2),
        (rf"^claim \+ reschedule at (?P<p_backlog>{N}) backlog\s+(?P<p_us>{N}) us/claim$", 2),
        (rf"^claims per second at the backlog\s+(?P<p_one>{N}) with one claimer, (?P<p_three>{N}) with three", 2),
        (rf"^resident memory\s+(?P<p_before>{N}) MiB before discovery .*, (?P<p_after>{N}) MiB after"
         rf" discovering (?P<p_n>{N}) \(\+?(?P<f_delta>{N})\), (?P<p_end>{N}) MiB at the end$", 2),
        (rf"^ledger file\s+(?P<p_mib>{N}) MiB$", 1),
    ],
    "bench:scrape": [
        (rf"^ledger report at (?P<p_n>{N}) recordings: (?P<p_mean>{N}) ms mean, (?P<p_worst>{N}) ms worst", 1),
    ],
}


def check(name, text):
    """The problems with `text` as the output of bench `name`: empty when it is sane."""
    if name not in SPECS:
        return [f"{name}: no figures known for this bench (add them to scripts/lib/bench_figures.py)"]
    problems = []
    lines = text.splitlines()
    for pattern, expected in SPECS[name]:
        regex = re.compile(pattern)
        found = [m for m in map(regex.search, lines) if m]
        if len(found) < expected:
            problems.append(f"{name}: {len(found)} of {expected} lines like /{pattern[:60]}.../")
        for match in found:
            for group, raw in match.groupdict().items():
                value = float(raw)
                figure = f"{name}: {group[2:]} = {raw} in `{match.group(0).strip()}`"
                if not math.isfinite(value):
                    problems.append(f"{figure} is not finite")
                elif group.startswith("p_") and value <= 0:
                    problems.append(f"{figure} is not above zero")
                elif group.startswith("z_") and value < 0:
                    problems.append(f"{figure} is below zero")
    return problems


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    problems = check(sys.argv[1], sys.stdin.read())
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
