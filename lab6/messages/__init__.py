"""Message catalogues, one module per topic so each part of lab6 owns its wording.

Each topic module defines ``ZH_TW`` and ``EN``: dicts from message key to a
``str.format`` template. Keys must be unique across topics.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["MESSAGES"]


def _collect() -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {"zh-TW": {}, "en": {}}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        topic = importlib.import_module(f"{__name__}.{info.name}")
        for lang, table in (("zh-TW", topic.ZH_TW), ("en", topic.EN)):
            clash = merged[lang].keys() & table.keys()
            if clash:
                raise RuntimeError(f"message keys defined twice: {sorted(clash)}")
            merged[lang].update(table)
    return merged


MESSAGES = _collect()
