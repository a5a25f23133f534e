"""The optional libraries of the ``maps`` extra, checked before any work starts."""

from __future__ import annotations

import importlib.util

INSTALL = "pip install 'embedserve[maps]'"


class MissingExtra(ImportError):
    pass


def require(*modules: str) -> None:
    """Raise MissingExtra naming the install command when any module is absent."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(
            f"maps need {', '.join(missing)}: {INSTALL} (or 'embedserve-client[maps]' "
            "for the client package alone)"
        )
