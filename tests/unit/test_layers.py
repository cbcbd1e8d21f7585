"""The import contracts of pyproject.toml (DESIGN §3) hold; CI runs them through this test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency: make install"
    result = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]
    kept = [
        line for line in result.stdout.splitlines() if line.rstrip().endswith(("KEPT", "import)"))
    ]
    assert len(kept) == 4, result.stdout
