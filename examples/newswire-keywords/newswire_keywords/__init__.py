"""An example newswire plug-in: keyword alerts.

Reads enriched articles; every article whose title or excerpt names one of the
keywords is appended as one JSON line to a file. Its settings are its own
pydantic model, which newswire loads from ``NEWSWIRE_KEYWORDS__<FIELD>``:
``NEWSWIRE_KEYWORDS__WORDS='["privacy", "facial recognition"]'`` and
``NEWSWIRE_KEYWORDS__OUT=alerts.jsonl``. Run it with ``newswire consume keywords``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO

from pydantic import BaseModel, Field

from newswire import Article, Consumer, Skip


class KeywordSettings(BaseModel):
    """``NEWSWIRE_KEYWORDS__WORDS`` (a JSON list) and ``NEWSWIRE_KEYWORDS__OUT``."""

    words: list[str] = Field(
        default_factory=lambda: ["facial recognition", "privacy"],
        description="Keywords to look for (case-insensitive).",
    )
    out: Path = Field(Path("keyword-alerts.jsonl"), description="Alerts are appended here.")


class KeywordAlerts(Consumer):
    """Writes an alert line for each article that mentions a keyword."""

    name = "keywords"
    topics = ("articles.enriched",)
    settings_model = KeywordSettings

    def setup(self) -> None:
        settings = self.context.settings.section(self.name, KeywordSettings)
        words = [w.strip() for w in settings.words if w.strip()]
        self.pattern = re.compile("|".join(re.escape(w) for w in words), re.I)
        self.out: IO[str] = settings.out.open("a")

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
