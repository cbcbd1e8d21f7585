"""The exact keys an article is remembered by: its URL identity and its content."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import xxhash

__all__ = ["content_fingerprint", "content_text", "normalize_text"]

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Case-, accent-form-, punctuation- and whitespace-insensitive text."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", text).strip()


def content_text(record: Mapping[str, Any], min_chars: int) -> str:
    """The normalised text that identifies an article's content, or ``""`` if too short.

    The body when it has at least *min_chars* characters, else title + excerpt
    (aggregator items often carry no body). Short formulaic texts get no
    fingerprint: two different briefs can be word-for-word equal.
    """
    body = normalize_text(record.get("body") or "")
    if len(body) >= min_chars:
        return body
    head = normalize_text(f"{record.get('title') or ''} {record.get('excerpt') or ''}")
    return head if len(head) >= min_chars else ""


def content_fingerprint(record: Mapping[str, Any], min_chars: int) -> str | None:
    """128-bit hash of :func:`content_text`, or None when the text is too short."""
    text = content_text(record, min_chars)
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8")) if text else None
