"""The plug-in tested with newswire's test kit: no broker needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from newswire_keywords import KeywordAlerts

from newswire import EnrichedArticle
from newswire.testing import run_consumer


def article(title: str, url: str) -> EnrichedArticle:
    return EnrichedArticle.model_validate({"title": title, "originalUrl": url, "language": "en"})


def test_alerts_only_on_keywords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("NEWSWIRE_KEYWORDS__WORDS", '["privacy", " Facial Recognition"]')
    monkeypatch.setenv("NEWSWIRE_KEYWORDS__OUT", str(out))

    result = run_consumer(
        KeywordAlerts(),
        [
            article("City bans facial recognition", "https://example.com/a"),
            article("Weather is fine", "https://example.com/b"),
            article("Privacy law passes", "https://example.com/c"),
        ],
    )

    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["url"], a["keywords"]) for a in alerts] == [
        ("https://example.com/a", ["facial recognition"]),
        ("https://example.com/c", ["privacy"]),
    ]
    assert result.dead_letters == []
    assert sum(result.committed.values()) == 3  # every input committed, the skipped one too
