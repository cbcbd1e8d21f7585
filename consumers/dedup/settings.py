"""The ``dedup`` consumer's settings: ``NEWSWIRE_DEDUP__<FIELD>``."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["DedupSettings"]


class DedupSettings(BaseModel):
    """The ``dedup`` consumer: what counts as a duplicate, and what it remembers."""

    state_url: str = Field(
        "sqlite:///newswire-dedup.sqlite",
        description="sqlite:///PATH (one host) or postgresql://… (shared by a consumer group).",
    )
    max_entries: int = Field(
        1_000_000, ge=1, description="Remembered articles before the oldest are evicted."
    )
    window_s: int = Field(
        0,
        ge=0,
        description="Also forget articles whose event time is this far (seconds) behind the "
        "newest one remembered; 0: no window.",
    )
    min_content_chars: int = Field(
        80, description="Shorter texts get no content fingerprint (too formulaic to compare)."
    )
    near: bool = Field(True, description="Detect near-duplicates (syndicated copies).")
    near_threshold: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Estimated Jaccard similarity of word 5-shingles from which a candidate "
        "is a near-duplicate.",
    )
    near_min_words: int = Field(
        50, ge=5, description="Texts with fewer words are compared exactly only (briefs, scores)."
    )
