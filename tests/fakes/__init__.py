"""One toolkit for the fake SaaS APIs of source tests (see ``api`` and ``server``).

A fake API is a :class:`FakeApi` subclass whose ``@route`` methods answer like the real API
(and page like it); :class:`Fault` scripts misbehaviour; ``fake_apis.use(FakeX)`` (the
session fixture) hands a test the API on a running 127.0.0.1 server, reset for that test.
"""

from tests.fakes.api import FOREVER, FakeApi, Fault, Request, Response, route
from tests.fakes.server import FakeApis, FakeServer, serve

__all__ = [
    "FOREVER",
    "FakeApi",
    "FakeApis",
    "FakeServer",
    "Fault",
    "Request",
    "Response",
    "route",
    "serve",
]
