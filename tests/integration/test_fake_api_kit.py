"""The fake-API kit itself (``tests.fakes``), over real sockets with httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.fakes import FOREVER, FakeApi, FakeApis, Fault, Request, Response, route, serve


class Items(FakeApi):
    """A tiny API: one list, one item, one echo."""

    def setup(self) -> None:
        self.items = {"a": 1, "b/c": 2}

    @route("GET", "/items", "list")
    def all_items(self, request: Request) -> Any:
        return sorted(self.items)

    @route("GET", "/items/{key}")
    def item(self, request: Request) -> Response:
        key = request.params["key"]
        if key not in self.items:
            return self.error(404, f"no item {key}")
        return Response(json={"key": key, "value": self.items[key], "q": request.arg("q")})

    @route("POST", "/echo", "echo")
    def echo(self, request: Request) -> Response:
        return Response(201, text=request.body.decode(), headers={"X-Len": str(len(request.body))})


@pytest.fixture(scope="module")
def apis() -> Iterator[FakeApis]:
    with FakeApis() as pool:
        yield pool


@pytest.fixture
def api(apis: FakeApis) -> Iterator[Items]:
    with apis.use(Items) as fake:
        yield fake


@pytest.fixture
def client(api: Items) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=2) as c:
        yield c


def test_routes_params_query_and_the_log(api: Items, client: httpx.Client) -> None:
    assert client.get("/items").json() == ["a", "b/c"]
    assert client.get("/items/b%2Fc", params={"q": "x y"}).json() == {
        "key": "b/c",
        "value": 2,
        "q": "x y",
    }
    answer = client.post("/echo", content=b"hello", headers={"X-Thing": "1"})
    assert (answer.status_code, answer.text, answer.headers["x-len"]) == (201, "hello", "5")
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    missing = client.delete("/items/a")
    assert (missing.status_code, missing.json()) == (404, {"error": "no route for DELETE /items/a"})
    log = api.requests()
    assert [(r.number, r.route, r.method) for r in log] == [
        (1, "list", "GET"), (2, "item", "GET"), (3, "echo", "POST"), (4, None, "DELETE"),
    ]  # fmt: skip
    assert log[1].raw_path == "/items/b%2Fc" and log[1].path == "/items/b/c"
    assert log[1].query == {"q": ["x y"]}
    assert log[2].body == b"hello" and log[2].headers["x-thing"] == "1"
    assert api.requests("echo") == [log[2]]
    assert log[0].at <= log[1].at <= log[2].at


def test_faults_in_order_per_route_with_times_and_path(api: Items, client: httpx.Client) -> None:
    api.fault(
        "item",
        Fault(status=503, headers={"Retry-After": "0"}),
        Fault(status=429, times=2, path="/b"),
        Fault(body={"x": 1}),
        Fault(body=b"<html>", content_type="text/html"),
    )
    first = client.get("/items/a")
    assert (first.status_code, first.headers["retry-after"]) == (503, "0")
    assert first.json() == {"error": "scripted fault"}  # the API's error shape
    assert client.get("/items/a").json() == {"x": 1}  # the 429s are for /b… only
    assert [client.get("/items/b%2Fc").status_code for _ in range(2)] == [429, 429]
    html = client.get("/items/a")
    assert (html.headers["content-type"], html.text) == ("text/html", "<html>")
    assert client.get("/items/a").status_code == 200 and api.pending_faults() == []
    assert client.get("/items").status_code == 200  # other routes untouched


def test_drop_cut_delay_and_mangle_on_the_wire(api: Items, client: httpx.Client) -> None:
    def double(request: Request, response: Response) -> Response:
        return Response(json={**response.json(), "value": 2 * response.json()["value"]})

    api.fault("item", Fault(drop=True), Fault(cut=True), Fault(delay=0.3), Fault(mangle=double))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.get("/items/a")
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        client.get("/items/a")
    started = time.monotonic()
    assert client.get("/items/a").json()["value"] == 1
    assert time.monotonic() - started >= 0.3
    assert client.get("/items/a").json()["value"] == 2
    api.fault("list", Fault(delay=0.5))
    with pytest.raises(httpx.ReadTimeout):
        client.get("/items", timeout=0.1)


def test_fault_by_request_number_and_forever(api: Items, client: httpx.Client) -> None:
    api.fault_on(2, Fault(status=500))
    assert [client.get("/items").status_code for _ in range(3)] == [200, 500, 200]
    api.fault("list", replace(Fault(status=502), times=FOREVER))
    assert {client.get("/items").status_code for _ in range(5)} == {502}
    with pytest.raises(KeyError, match="no route 'lists'"):
        api.fault("lists", Fault(status=500))


def test_reset_forgets_state_and_abandons_requests_in_flight(
    api: Items, client: httpx.Client
) -> None:
    api.items["z"] = 26
    api.fault("item", Fault(delay=1.0), Fault(status=500))
    outcome: list[Any] = []

    def slow() -> None:
        try:
            outcome.append(httpx.get(f"{api.url}/items/z", timeout=5).status_code)
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 5
    while api.in_flight == 0 and time.monotonic() < deadline:  # the request has arrived
        time.sleep(0.01)
    api.reset()  # as between two tests: the delayed request is never answered
    thread.join()
    assert outcome == ["RemoteProtocolError"]
    assert api.requests() == [] and api.pending_faults() == [] and "z" not in api.items
    assert client.get("/items/a").status_code == 200


def test_session_pool_reuses_one_server_and_own_port_does_not(apis: FakeApis) -> None:
    with apis.use(Items) as first:
        shared = first.url
    with apis.use(Items) as again:
        assert again.url == shared and again.requests() == []
    with apis.use(Items, own_port=True) as one, apis.use(Items, own_port=True) as two:
        assert len({shared, one.url, two.url}) == 3
    with pytest.raises(OSError), socket.socket() as sock:  # stopped, but its port still held
        sock.bind(("127.0.0.1", int(one.url.rsplit(":", 1)[1])))


def test_peak_concurrency_and_a_raising_handler_fails_the_test(api: Items) -> None:
    # long enough that all three are in flight at once even on a loaded 2-core machine
    api.fault("list", *[Fault(delay=1.0)] * 3)
    threads = [threading.Thread(target=httpx.get, args=(f"{api.url}/items",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The server marks a request done after writing its answer, so a client can hold the
    # answer a moment before the count drops: wait for it (bounded), then check.
    deadline = time.monotonic() + 5
    while api.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.peak_concurrency == 3 and api.in_flight == 0

    class Broken(Items):
        @route("GET", "/boom")
        def boom(self, request: Request) -> Response:
            raise RuntimeError("bug in the fake")

    with (
        pytest.raises(AssertionError, match="bug in the fake"),
        FakeApis() as pool,
        pool.use(Broken) as broken,
    ):
        assert httpx.get(f"{broken.url}/boom").status_code == 500
    with serve(Broken()) as standalone:
        assert httpx.get(f"{standalone.url}/items").json() == ["a", "b/c"]
