"""A fake Gmail API (plus Google's token endpoint) over a mailbox held in memory.

Routes: ``gmail.list`` (``GET /gmail/v1/users/{userId}/messages``), ``gmail.message``
(``…/messages/{id}``, ``format=full`` only) and ``gmail.attachment``
(``…/messages/{id}/attachments/{aid}``); ``token`` from :class:`GoogleApi`. ``q``'s
``after:``/``before:`` epochs filter on internalDate, both bounds *inclusive* here since
Gmail does not document them: the source must not rely on it. Lists page by
``nextPageToken`` newest first, as Gmail does.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from tests.fakes.api import Request, Response, route
from tests.fakes.google import GoogleApi, b64url, google_error

SCOPES = {
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
}


def attachment(filename: str, data: bytes, mime: str = "text/csv") -> dict[str, Any]:
    """A part whose body the API serves through attachments.get."""
    return {"mimeType": mime, "filename": filename, "_attach": data}


def inline(filename: str, data: bytes, mime: str = "text/csv") -> dict[str, Any]:
    """A part whose (small) body is inline in ``body.data``."""
    return {"mimeType": mime, "filename": filename, "_inline": data}


def text(body: str, mime: str = "text/plain") -> dict[str, Any]:
    """A body part (no filename: not an attachment)."""
    return {"mimeType": mime, "filename": "", "_inline": body.encode()}


def multipart(subtype: str, *parts: dict[str, Any]) -> dict[str, Any]:
    """A ``multipart/<subtype>`` part holding ``parts``."""
    return {"mimeType": f"multipart/{subtype}", "filename": "", "parts": list(parts)}


def rate_limit_403(reason: str) -> Any:
    """Gmail's quota answer sent as 403."""
    return google_error(403, "User-rate limit exceeded.", reason, "PERMISSION_DENIED")


def _not_found() -> Response:
    return Response(
        404, json=google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
    )


class FakeGmail(GoogleApi):
    """``users.messages`` list/get and ``attachments.get`` of user ``me``."""

    def setup(self) -> None:
        """An empty mailbox (and fresh token-endpoint state)."""
        super().setup()
        self.messages: dict[str, dict[str, Any]] = {}
        self.attachments: dict[tuple[str, str], bytes] = {}

    def add_message(self, message_id: str, internal_epoch: float, payload: dict[str, Any]) -> None:
        """A message; parts made by :func:`attachment`/:func:`inline` get their bodies here."""

        def fill(part: dict[str, Any], part_id: str) -> None:
            part["partId"] = part_id
            part.setdefault("headers", [])
            if "_attach" in part:
                data = part.pop("_attach")
                attachment_id = "ANGjdJ" + secrets.token_urlsafe(24)
                self.attachments[(message_id, attachment_id)] = data
                part["body"] = {"attachmentId": attachment_id, "size": len(data)}
            elif "_inline" in part:
                data = part.pop("_inline")
                part["body"] = {"size": len(data), "data": b64url(data)}
            else:
                part.setdefault("body", {"size": 0})
            for i, child in enumerate(part.get("parts", [])):
                fill(child, f"{part_id}.{i}" if part_id else str(i))

        fill(payload, "")
        self.messages[message_id] = {
            "id": message_id,
            "threadId": message_id,
            "labelIds": ["INBOX"],
            "snippet": "Your daily report",
            "sizeEstimate": 1000,
            "historyId": "1",
            "internalDate": str(int(internal_epoch * 1000)),
            "payload": payload,
        }

    def _refuse(self, request: Request) -> Response | None:
        refused = self.refuse(request, SCOPES)
        if refused is None and request.params["user"] != "me":
            body = google_error(400, "Invalid users.messages request", "invalidArgument")
            return Response(400, json=body)
        return refused

    @route("GET", "/gmail/v1/users/{user}/messages", "gmail.list")
    def list_messages(self, request: Request) -> Response:
        """Ids of the messages ``q``'s after:/before: select, newest first, paged."""
        if (refused := self._refuse(request)) is not None:
            return refused
        q = request.arg("q", "") or ""
        after = re.search(r"\bafter:(\d+)\b", q)
        before = re.search(r"\bbefore:(\d+)\b", q)
        size = int(request.arg("maxResults", "100") or 100)
        if not after or not before or size > 500:
            return Response(400, json=google_error(400, "Invalid query", "invalidArgument"))
        low, high = int(after.group(1)) * 1000, int(before.group(1)) * 1000
        hits = sorted(
            (m for m in self.messages.values() if low <= int(m["internalDate"]) <= high),
            key=lambda m: -int(m["internalDate"]),
        )
        start = 0
        if page_token := request.arg("pageToken"):
            match = re.fullmatch(r"page-(\d+)", page_token)
            if not match:
                return Response(400, json=google_error(400, "Invalid pageToken", "invalidArgument"))
            start = int(match.group(1))
        page = hits[start : start + size]
        answer: dict[str, Any] = {"resultSizeEstimate": len(hits)}
        if page:
            answer["messages"] = [{"id": m["id"], "threadId": m["threadId"]} for m in page]
        if start + size < len(hits):
            answer["nextPageToken"] = f"page-{start + size}"
        return Response(json=answer)

    @route("GET", "/gmail/v1/users/{user}/messages/{id}", "gmail.message")
    def get_message(self, request: Request) -> Response:
        """One message, ``format=full``."""
        if (refused := self._refuse(request)) is not None:
            return refused
        message = self.messages.get(request.params["id"])
        if request.query.get("format") != ["full"]:
            body = google_error(400, "this fake serves format=full only", "invalidArgument")
            return Response(400, json=body)
        if message is None:
            return _not_found()
        return Response(json=message)

    @route("GET", "/gmail/v1/users/{user}/messages/{id}/attachments/{aid}", "gmail.attachment")
    def get_attachment(self, request: Request) -> Response:
        """One attachment's body, base64url."""
        if (refused := self._refuse(request)) is not None:
            return refused
        aid = request.params["aid"]
        data = self.attachments.get((request.params["id"], aid))
        if data is None:
            return _not_found()
        return Response(json={"attachmentId": aid, "size": len(data), "data": b64url(data)})

    @route("GET", "/gmail/v1/users/{user}/profile", "gmail.profile")
    def profile(self, request: Request) -> Response:
        """The mailbox's profile (``doctor``'s probe)."""
        if (refused := self._refuse(request)) is not None:
            return refused
        total = len(self.messages)
        body = {"emailAddress": "reports@example.com", "messagesTotal": total, "historyId": "1"}
        return Response(json=body)
