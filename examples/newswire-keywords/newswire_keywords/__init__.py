"""An example newswire plug-in: keyword alerts.

Reads enriched articles; every article whose title or excerpt names one of the
keywords (env ``KEYWORDS``, comma-separated) is appended as one JSON line to
the file named by ``KEYWORDS_OUT``. Run it with ``newswire consume keywords``.
"""

from __future__ import annotations

import json
import os
import re
from typing import IO

from newswire import Article, Consumer, Skip


class KeywordAlerts(Consumer):
    """Writes an alert line for each article that mentions a keyword."""

    name = "keywords"
    topics = ("articles.enriched",)

    def setup(self) -> None:
        words = os.environ.get("KEYWORDS", "facial recognition,privacy").split(",")
        self.pattern = re.compile("|".join(re.escape(w.strip()) for w in words if w.strip()), re.I)
        self.out: IO[str] = open(os.environ.get("KEYWORDS_OUT", "keyword-alerts.jsonl"), "a")  # noqa: SIM115

    def handle(self, article: Article) -> None:
        text = f"{article.title} {article.excerpt}"
        found = sorted({match.lower() for match in self.pattern.findall(text)})
        if not found:
            raise Skip  # nothing to say about this one
        alert = {"id": article.id, "url": article.original_url, "keywords": found}
        self.out.write(json.dumps(alert) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.close()
