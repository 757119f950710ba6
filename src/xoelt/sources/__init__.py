"""Source registry: ``source_type`` (the YAML name) → extractor class.

Each module in this package registers its extractor with :func:`register`; adding a source
is one new module and one test file. Modules here must stay light at import time (httpx,
google-auth and boto3 are imported inside methods), because ``plan`` and ``validate`` import
them all to validate the ``extractor:`` blocks.
"""

from __future__ import annotations

import importlib
import pkgutil

from xoelt.errors import InputError
from xoelt.sources.base import Source

_REGISTRY: dict[str, type[Source]] = {}
_LOADED = False


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: make ``cls`` available under ``cls.source_type``."""
    _REGISTRY[cls.source_type] = cls
    return cls


def source_types() -> dict[str, type[Source]]:
    """Every registered source type (imports this package's modules once)."""
    global _LOADED
    if not _LOADED:
        for module in pkgutil.iter_modules(__path__):
            if module.name not in ("base", "http") and not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _LOADED = True
    return _REGISTRY


def get_source(source_type: str) -> type[Source]:
    """The extractor class for ``source_type``; the error lists the valid names."""
    known = source_types()
    if source_type not in known:
        raise InputError(f"unknown source_type {source_type!r}; valid: {', '.join(sorted(known))}")
    return known[source_type]
