"""Source registry: ``source_type`` (the YAML name) → extractor class.

A source registers itself by its class statement (``class X(Source[XConfig],
source_type="x_api")``, see :mod:`xoelt.sources.base`); adding a source is one new module
and one test file. Modules here must stay light at import time (httpx, google-auth, orjson
and boto3 are imported inside functions), because ``plan`` and ``validate`` import them all
to validate the ``extractor:`` blocks.

The kit every source shares: :mod:`~xoelt.sources.base` (``Source``, ``CsvSink``,
``ExtractContext``, secret references), :mod:`~xoelt.sources.http` (the retrying client),
:mod:`~xoelt.sources.paging` (cursor pagination), :mod:`~xoelt.sources.prefetch` (the next
page fetched while this one is written) and :mod:`~xoelt.sources.csv_files` (CSV files
combined by column name). Modules whose names start with ``_`` are private helpers.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from xoelt.errors import InputError
from xoelt.sources.base import REGISTRY, Source

_LOADED = False


def source_types() -> dict[str, type[Source[Any]]]:
    """Every registered source type (imports this package's modules once)."""
    global _LOADED
    if not _LOADED:
        for module in pkgutil.iter_modules(__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _LOADED = True
    return REGISTRY


def get_source(source_type: str) -> type[Source[Any]]:
    """The extractor class for ``source_type``; the error lists the valid names."""
    known = source_types()
    if source_type not in known:
        raise InputError(f"unknown source_type {source_type!r}; valid: {', '.join(sorted(known))}")
    return known[source_type]
