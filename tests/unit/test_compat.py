"""Schema evolution rules: only fully compatible changes pass `newswire schemas check`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from newswire.compat import check_store
from newswire.serde import SchemaStore, SingleObjectSerde, schemas_dir


def _schema_dir(tmp_path: Path, change: dict[str, Any] | None, drop: str | None = None) -> Path:
    """A copy of the real schemas where article.avsc gains *change* / loses *drop*,
    and the unchanged article schema is kept as history."""
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root, ignore=shutil.ignore_patterns("history"))
    original = json.loads((root / "article.avsc").read_text())
    (root / "history" / "article").mkdir(parents=True)
    (root / "history" / "article" / "1.avsc").write_text(json.dumps(original))
    new = json.loads(json.dumps(original))
    if change:
        new["fields"].append(change)
    if drop:
        new["fields"] = [f for f in new["fields"] if f["name"] != drop]
    (root / "article.avsc").write_text(json.dumps(new))
    return root


def test_the_shipped_schemas_are_consistent() -> None:
    _pairs, problems = check_store(SchemaStore.from_dir())
    assert problems == []
    result = subprocess.run(
        [sys.executable, "-m", "newswire", "schemas", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 incompatible" in result.stdout


def test_a_new_field_with_a_default_is_compatible_and_old_events_stay_readable(
    tmp_path: Path,
) -> None:
    root = _schema_dir(tmp_path, {"name": "paywalled", "type": "boolean", "default": False})
    store = SchemaStore.from_dir(root)
    pairs, problems = check_store(store)
    assert len(pairs) == 1 and problems == []
    old = next(s for s in store if not s.current)
    # An event written with the old version decodes to the new one, default filled in.
    legacy = SingleObjectSerde(SchemaStore.from_dir(root / "history" / "article"))
    record = {
        "id": "1",
        "canonical_url": "https://x.org/a",
        "title": "t",
        "original_url": "https://x.org/a",
        "provider": {"name": "", "domain": ""},
    }
    data = legacy.encode(old.name, record)
    name, decoded = SingleObjectSerde(store).decode(data)
    assert name == "newswire.Article"
    assert decoded["paywalled"] is False and decoded["title"] == "t"


@pytest.mark.parametrize(
    ("change", "drop", "direction"),
    [
        ({"name": "mandatory", "type": "string"}, None, "backward"),  # no default
        (None, "title", "forward"),  # removed a field old readers need
    ],
)
def test_breaking_changes_are_refused(
    tmp_path: Path, change: dict[str, Any] | None, drop: str | None, direction: str
) -> None:
    root = _schema_dir(tmp_path, change, drop)
    _pairs, problems = check_store(SchemaStore.from_dir(root))
    assert [p.direction for p in problems] == [direction]
    result = subprocess.run(
        [sys.executable, "-m", "newswire", "schemas", "check", "--directory", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "incompatible" in result.stdout
