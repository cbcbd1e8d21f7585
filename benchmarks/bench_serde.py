#!/usr/bin/env python3
"""What the wire formats cost per record: encode, decode, projected decode, extend.

In one process, on N seed-shaped articles (~2.9 KB Avro, the records of
bench_stages), for each mode (``single-object``; ``registry`` on
confluent-kafka's in-process ``mock://`` registry — the registry is asked once
per schema, so its transport does not matter here):

- ``encode``: an Article record to bytes (``serde.encode``);
- ``decode``: bytes to ``(name, record)``, the full record;
- ``decode 4 fields``: a projected decode of id, canonical_url, title, body;
- ``extend``: Article bytes + the enrichment fields → EnrichedArticle bytes
  (what enrich does), beside ``encode enriched``, the full re-encode it saves;
- ``decode + validate``: a full decode and ``Article.model_validate``.

Records go through each job a batch of 1,000 at a time, the results of a batch
held until it is done, as the runner holds a polled batch of events. Every job
runs twice: with CPython's default GC, and after :func:`newswire.process.tune_gc`
(``gc.freeze()`` + a generation-0 threshold of 50,000), as ``newswire consume``
does after setup.

The baseline, measured in the same run, is fastavro alone: ``schemaless_reader``
with the writer schema on the datum (no header, no lookups). Each figure is CPU
µs per record (``time.process_time``: this process, all threads) and a rate,
both as ratios to the baseline; the median of ``--repeat`` rounds.

    .venv/bin/python benchmarks/bench_serde.py [--articles 5000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import fastavro  # noqa: E402

from newswire.model import Article  # noqa: E402
from newswire.process import tune_gc  # noqa: E402
from newswire.serde import ARTICLE, ENRICHED_ARTICLE, Serde, SingleObjectSerde  # noqa: E402
from newswire.serde.registry import RegistrySerde  # noqa: E402

RAW, ENRICHED = "articles.raw", "articles.enriched"
FEW = ("id", "canonical_url", "title", "body")
#: Records held at once, as the runner holds a polled batch (max_poll_records).
BATCH = 1000


def records(n: int) -> list[dict[str, Any]]:
    """N distinct seed-shaped Article records (bench_stages' generator)."""
    import datetime as dt

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_stages import article_fields, load_seed

    seed = load_seed()
    now = dt.datetime.now(dt.UTC)
    out = []
    for i in range(n):
        record = Article.model_validate(article_fields(seed, i)).model_dump()
        record["ingested_at"] = now
        record["source"] = "bench"
        out.append(record)
    return out


def enrichment(i: int) -> dict[str, Any]:
    import datetime as dt

    return {
        "word_count": 500 + i % 100,
        "reading_time_s": 130,
        "language": "en",
        "language_score": 0.99,
        "registered_domain": "example.com",
        "enriched_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    }


def timed(run: Callable[[], object], n: int) -> tuple[float, float]:
    """(CPU µs per record, wall µs per record) of *run* over n records."""
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return (time.process_time() - cpu) * 1e6 / n, (time.perf_counter() - wall) * 1e6 / n


def batched(items: list[Any], op: Callable[[Any], object]) -> Callable[[], object]:
    """*op* over *items* a batch at a time, each batch's results held until it is done:
    what the runner does (a polled batch of events lives until it is handled), and what
    the garbage collector sees."""

    def run() -> None:
        for start in range(0, len(items), BATCH):
            held = [op(item) for item in items[start : start + BATCH]]
            del held

    return run


def jobs(serde: Serde, recs: list[dict[str, Any]]) -> dict[str, Callable[[], object]]:
    """Each operation over all records, for *serde*."""
    encoded = [serde.encode(ARTICLE, r, topic=RAW) for r in recs]
    extras = [enrichment(i) for i in range(len(recs))]
    enriched = [{**r, **e} for r, e in zip(recs, extras, strict=True)]
    decode, encode, extend = serde.decode, serde.encode, serde.extend
    pairs = list(zip(encoded, extras, strict=True))
    return {
        "encode": batched(recs, lambda r: encode(ARTICLE, r, topic=RAW)),
        "decode": batched(encoded, decode),
        "decode 4 fields": batched(encoded, lambda v: decode(v, FEW)),
        "extend": batched(pairs, lambda p: extend(p[0], ENRICHED_ARTICLE, p[1], topic=ENRICHED)),
        "encode enriched": batched(enriched, lambda r: encode(ENRICHED_ARTICLE, r, topic=ENRICHED)),
        "decode + validate": batched(encoded, lambda v: Article.model_validate(decode(v)[1])),
    }


def baseline(serde: SingleObjectSerde, recs: list[dict[str, Any]]) -> Callable[[], object]:
    parsed = serde.store.current[ARTICLE].parsed
    datums = [serde.encode(ARTICLE, r)[10:] for r in recs]
    reader = fastavro.schemaless_reader
    return batched(datums, lambda d: reader(io.BytesIO(d), parsed, None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    n = args.articles

    recs = records(n)
    single = SingleObjectSerde()
    modes: dict[str, Serde] = {
        "single-object": single,
        "registry": RegistrySerde(url=f"mock://bench-{uuid.uuid4().hex}"),
    }
    runs: dict[str, list[tuple[float, float]]] = {}
    suites = {name: jobs(serde, recs) for name, serde in modes.items()}
    base = baseline(single, recs)
    for name in modes:  # warm caches (registry ids, projections) once
        for job in suites[name].values():
            job()
    for _ in range(args.repeat):
        runs.setdefault("fastavro decode (baseline)", []).append(timed(base, n))
        for mode, suite in suites.items():
            for job, run in suite.items():
                runs.setdefault(f"{mode}: {job}", []).append(timed(run, n))
    # Then every job again with the GC tuned as `newswire consume` does after setup
    # (last: gc.freeze() is not undone).
    tune_gc()
    for _ in range(args.repeat):
        runs.setdefault("fastavro decode (baseline), gc tuned", []).append(timed(base, n))
        for mode, suite in suites.items():
            for job, run in suite.items():
                runs.setdefault(f"{mode}: {job}, gc tuned", []).append(timed(run, n))

    medians = {
        job: (statistics.median(c for c, _ in r), statistics.median(w for _, w in r))
        for job, r in runs.items()
    }
    base_cpu, base_wall = medians["fastavro decode (baseline)"]
    result = {
        "articles": n,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "fastavro": fastavro.__version__,
        "jobs": {
            job: {
                "cpu_us": round(cpu, 2),
                "cpu_ratio": round(cpu / base_cpu, 2),
                "rate_per_s": round(1e6 / wall),
                "rate_ratio": round(base_wall / wall, 2),
            }
            for job, (cpu, wall) in medians.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{n} articles, median of {args.repeat}; ratios to fastavro's own decode "
        f"({base_cpu:.1f} CPU µs/record) in this run"
    )
    print(f"{'job':<46} {'CPU µs':>8} {'x base':>7} {'rec/s':>9} {'x base':>7}")
    for job, row in result["jobs"].items():  # type: ignore[attr-defined]
        print(
            f"{job:<46} {row['cpu_us']:>8.1f} {row['cpu_ratio']:>7.2f} "
            f"{row['rate_per_s']:>9,} {row['rate_ratio']:>7.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
