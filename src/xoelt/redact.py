"""Secret redaction: the one filter every text leaving the process goes through.

A secret's value is registered the moment it is read (:meth:`SecretRef.resolve
<xoelt.config.types.SecretRef.resolve>`, or a token a source obtains, such as a Google access
token). From then on :func:`redact` replaces it, and the forms it travels in, with ``***``:

- the value itself (so ``Bearer <token>`` is covered) and its URL-encoded form,
- any base64 text that decodes to something holding a registered value: its own base64,
  HTTP Basic ``user:password`` of any two values, a token inside a JSON blob.

The cost is linear in the number of values: a long-running process (a backfill refreshing a
Google token every hour) or a test worker registers hundreds, and neither pairs nor one big
regex are precomputed.

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
_forms: tuple[str, ...] = ()  # every literal form to mask, longest first
# A run that may be base64 (standard alphabet, padding optional): decoded and checked.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def register(value: str) -> None:
    """Mask ``value`` (and its encodings) in everything :func:`redact` sees from now on."""
    global _forms
    if len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.append(value)
        forms = {*_forms, value, quote(value, safe="")}
        # Longest first, so a form containing another is masked whole.
        _forms = tuple(sorted((f for f in forms if len(f) >= MIN_LENGTH), key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret form replaced by ``***``."""
    forms = _forms
    if not forms or not text:
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return _BASE64_RUN.sub(lambda m: _masked_if_secret(m.group(0), forms), text)


def _masked_if_secret(run: str, forms: tuple[str, ...]) -> str:
    try:
        decoded = base64.b64decode(run + "=" * (-len(run) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return run
    return MASK if any(form in decoded for form in forms) else run


def forget_all() -> None:
    """Drop every registered value (tests that register sentinels)."""
    global _forms
    with _lock:
        _values.clear()
        _forms = ()
