"""Warehouse column names from source headers, one rule for every layer that needs it.

The stage stage turns the ingest file's header into bronze's column list with
:func:`standardise`; a source that must know which of its columns silver types (the Google
Sheets source reads those unformatted) applies the same function to its own header, so the
two can never disagree. It lives at the bottom of the layers so both can import it.
"""

from __future__ import annotations

import re

__all__ = ["standardise"]


def standardise(names: list[str]) -> list[str]:
    """Column names for the warehouse: UPPERCASE, runs of non-alphanumerics → ``_``.

    Leading/trailing ``_`` are trimmed (so no name can shadow the ``_XO_`` metadata
    columns), a leading digit gets a ``_`` prefix, an empty name becomes ``COLUMN_<n>``, and
    collisions get ``_2``, ``_3``… in header order (deterministic).
    """
    out: list[str] = []
    taken: set[str] = set()
    for position, raw in enumerate(names, start=1):
        name = re.sub(r"[^A-Za-z0-9]+", "_", raw.strip()).strip("_").upper()
        if not name:
            name = f"COLUMN_{position}"
        if name[0].isdigit():
            name = f"_{name}"
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        out.append(candidate)
    return out
