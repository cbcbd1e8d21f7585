"""Finds consumers and sources by name through entry points.

Built-ins register themselves in newswire's own ``pyproject.toml`` exactly as
plug-ins do (groups ``newswire.consumers``, ``newswire.sources`` and
``newswire.stores`` — a store under the scheme of its URLs), so the kernel
never imports ``consumers`` or ``producers`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from newswire.errors import ConfigError

__all__ = ["CONSUMERS", "GROUPS", "SOURCES", "STORES", "Registered", "available", "load"]

CONSUMERS = "newswire.consumers"
SOURCES = "newswire.sources"
STORES = "newswire.stores"
#: Every group, in the order a plug-in name is looked up (for its settings).
GROUPS = (CONSUMERS, SOURCES, STORES)


@dataclass(frozen=True)
class Registered:
    """One registered plug-in."""

    name: str
    target: str
    distribution: str

    @property
    def builtin(self) -> bool:
        """Shipped with newswire itself."""
        return self.distribution == "newswire"


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def available(group: str) -> list[Registered]:
    """Everything registered in *group*, sorted by name."""
    found = []
    for name, ep in sorted(_entry_points(group).items()):
        dist = ep.dist.name if ep.dist is not None else "?"
        found.append(Registered(name, ep.value, dist))
    return found


def load(group: str, name: str) -> Any:
    """Import and return the object registered as *name* in *group*."""
    eps = _entry_points(group)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(
            f"no {group.rsplit('.', 1)[-1][:-1]} named {name!r} (known: {known})", name=name
        )
    try:
        return eps[name].load()
    except Exception as exc:
        raise ConfigError(f"cannot load {name!r} from {eps[name].value}: {exc}", name=name) from exc
