"""The report's HTML: one self-contained page from :mod:`string.Template`.

Everything the page needs is inside it: styles, the vendored Chart.js (``assets/``, MIT, see
``assets/README.md``) and the data, as a JSON blob in ``<script type="application/json">``
that a small inline script reads and renders with ``textContent`` (never ``innerHTML``), so a
ledger message holding ``<script>`` shows as text. The blob is JSON with ``<``, ``>`` and
``&`` written as ``\\u003c`` … escapes, so no value can close the script element; the few
values placed into the HTML itself go through :func:`html.escape`. A Content-Security-Policy
``default-src 'none'`` forbids the page any network request.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources
from string import Template
from typing import Any

CHART_JS_VERSION = "4.6.1"
"""The vendored Chart.js (``assets/chart.umd.min.js``)."""

_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)


@cache
def _template() -> Template:
    text = (resources.files("xoelt.report") / "template.html").read_text(encoding="utf-8")
    return Template(text)


@cache
def chart_js() -> str:
    """The vendored Chart.js, ready to inline: without its source-map comment (the map is
    not shipped, and a browser with developer tools open would look for it), and with any
    ``</`` escaped so it cannot end the ``<script>`` element it sits in."""
    path = resources.files("xoelt.report") / "assets" / "chart.umd.min.js"
    text = _SOURCE_MAP.sub("", path.read_text(encoding="utf-8"))
    return text.replace("</", "<\\/")


def json_blob(data: Any) -> str:
    """``data`` as JSON safe inside ``<script type="application/json">`` (and valid JSON)."""
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render(data: dict[str, Any], title: str) -> str:
    """The whole page for ``data`` (what :func:`xoelt.report.history.summarise` builds)."""
    days = data["days"]
    span = f"{days[0]} to {days[-1]} ({len(days)} days)" if days else "no days"
    return _template().substitute(
        title=html.escape(title),
        generated_at=html.escape(str(data["generated_at"])),
        span=html.escape(span),
        data=json_blob(data),
        chartjs=chart_js(),
    )
