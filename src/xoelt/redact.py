"""Secret redaction: the one filter every text leaving the process goes through.

A secret's value is registered the moment it is read (:meth:`SecretRef.resolve
<xoelt.config.types.SecretRef.resolve>`, or a token a source obtains, such as a Google access
token). From then on :func:`redact` replaces it, and the forms it travels in, with ``***``:

- the value itself (so ``Bearer <token>`` is covered),
- its base64 and URL-encoded forms,
- the base64 of ``a:b`` for every pair of registered values (HTTP Basic ``user:password``).

Callers: :class:`~xoelt.errors.XoeltError` (every error message, hence stderr and the
ledger's ``MESSAGE``), the log processor (every log line), and the ledger writer (``DETAILS``).
An API that echoes the ``Authorization`` header back in an error body is thereby harmless.
"""

from __future__ import annotations

import base64
import re
import threading
from urllib.parse import quote

MASK = "***"
# Shorter values would mask ordinary words; no real credential is this short.
MIN_LENGTH = 6

_lock = threading.Lock()
_values: list[str] = []  # raw secret values, in registration order
_forms: set[str] = set()  # every form to mask
_pattern: re.Pattern[str] | None = None


def _b64(text: str) -> list[str]:
    raw = base64.b64encode(text.encode()).decode()
    return [raw, raw.rstrip("=")]


def register(value: str) -> None:
    """Mask ``value`` (and its encodings) in everything :func:`redact` sees from now on."""
    global _pattern
    if len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        forms = {value, quote(value, safe=""), *_b64(value)}
        for other in _values:
            forms.update(_b64(f"{other}:{value}"))
            forms.update(_b64(f"{value}:{other}"))
        _values.append(value)
        _forms.update(f for f in forms if len(f) >= MIN_LENGTH)
        # Longest first, so a form containing another is masked whole.
        ordered = sorted(_forms, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(f) for f in ordered))


def redact(text: str) -> str:
    """``text`` with every registered secret form replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def forget_all() -> None:
    """Drop every registered value (tests that register sentinels)."""
    global _pattern
    with _lock:
        _values.clear()
        _forms.clear()
        _pattern = None
