#!/usr/bin/env python3
"""Checks Koios's /metrics with Prometheus' own text-format parser.

Two uses:

  metrics_check.py deltas BEFORE AFTER EXPECTATION...
      BEFORE and AFTER are files holding two scrapes. Each EXPECTATION is
      'name{label=value,...}=N' (the sample grew by exactly N between the
      scrapes) or 'name{...}>=N' (by at least N). Used by tests/admin.rs,
      which runs known queries between the scrapes.

  metrics_check.py url http://HOST:PORT [SECRET]
      Scrapes a running server's /metrics, parses it, checks the metric
      families every Koios exposes are there, and (if given) that SECRET
      appears in none of /health, /ready, /sources, /metrics. Used by
      scripts/test.sh against `koios serve`.

Exits non-zero with a message on the first failure.
"""

import re
import sys
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("metrics_check.py: pip install prometheus_client")

# Families every server has from its start (sources add theirs when attached).
REQUIRED = {
    "koios_client_connections": "gauge",
    "koios_client_connections_accepted": "counter",
    "koios_queries": "counter",
    "koios_query_duration_seconds": "histogram",
    "koios_rows_sent": "counter",
    "koios_bytes_sent": "counter",
    "koios_memory_reserved_bytes": "gauge",
    "koios_spilled_bytes": "gauge",
}


def samples(text):
    """{(sample name, sorted labels): value}, parsed by prometheus_client."""
    out = {}
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            out[key] = sample.value
    return out, families


EXPECTATION = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?(>=|=)(-?[0-9.]+)$")


def parse_expectation(text):
    match = EXPECTATION.match(text)
    if not match:
        sys.exit(f"metrics_check.py: cannot read expectation {text!r}")
    name, labels, op, number = match.groups()
    pairs = []
    for part in filter(None, (labels or "").split(",")):
        key, _, value = part.partition("=")
        pairs.append((key.strip(), value.strip().strip('"')))
    return (name, tuple(sorted(pairs))), op, float(number)


def deltas(before_path, after_path, expectations):
    with open(before_path) as f:
        before, _ = samples(f.read())
    with open(after_path) as f:
        after, families = samples(f.read())
    check_required(families)
    failures = []
    for text in expectations:
        key, op, expected = parse_expectation(text)
        if key not in after:
            failures.append(f"{text}: no sample {key} in the second scrape")
            continue
        delta = after[key] - before.get(key, 0.0)
        ok = delta == expected if op == "=" else delta >= expected
        print(f"{'ok  ' if ok else 'FAIL'} {text}: moved by {delta:g}")
        if not ok:
            failures.append(f"{text}: moved by {delta:g}")
    if failures:
        sys.exit("metrics_check.py: " + "; ".join(failures))


def check_required(families):
    for name, kind in REQUIRED.items():
        if families.get(name) != kind:
            sys.exit(f"metrics_check.py: no {kind} family {name} (got {families.get(name)})")


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(base, secret):
    status, text = fetch(base + "/metrics")
    if status != 200:
        sys.exit(f"metrics_check.py: /metrics answered {status}")
    parsed, families = samples(text)
    check_required(families)
    print(f"ok   /metrics parses: {len(families)} families, {len(parsed)} samples")
    if secret:
        for path in ("/health", "/ready", "/sources", "/metrics"):
            _, body = fetch(base + path)
            if secret in body:
                sys.exit(f"metrics_check.py: {path} shows a secret")
        print("ok   no secret in /health, /ready, /sources, /metrics")


def main(argv):
    if len(argv) >= 3 and argv[1] == "deltas":
        deltas(argv[2], argv[3], argv[4:])
    elif len(argv) in (3, 4) and argv[1] == "url":
        scrape(argv[2].rstrip("/"), argv[3] if len(argv) == 4 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
