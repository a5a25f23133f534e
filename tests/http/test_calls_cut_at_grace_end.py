"""An HTTP call still running when the drain's grace period is over ends as the calls the
drain refuses do: UNAVAILABLE, a 503 in the route's error shape (or, for an NDJSON stream
already answering, a last error line), recorded UNAVAILABLE, with no traceback in the log.

Each call here embeds far more than the server computes within the 1 s grace.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from server_records import access_lines, rpc_count, sample

from embedserve.server.auth import ROUTE_METHODS

_GREEK = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
)
_WORDS = _GREEK.split()


def _texts(count: int) -> list[str]:
    chosen = random.Random(7)
    return [" ".join(chosen.choice(_WORDS) for _ in range(150)) for _ in range(count)]


def _sample(running: Any, name: str, **labels: str) -> float:
    return sample(running, name, **labels)


def _count(running: Any, path: str, code: str) -> float:
    return rpc_count(running, ROUTE_METHODS[f"POST {path}"], code, "http")


def _access_line(caplog: pytest.LogCaptureFixture, path: str) -> str:
    lines = access_lines(caplog, f" {path} ", wait_s=0)
    assert len(lines) == 1, lines
    return lines[0]


def _cut_at_grace_end(running: Any, send: Callable[[httpx.Client], httpx.Response]) -> Any:
    """The answer to ``send``'s call, made while the server drains with a 1 s grace."""
    answers: list[httpx.Response | BaseException] = []

    def call() -> None:
        try:
            with httpx.Client(base_url=running.url, timeout=60) as http:
                answers.append(send(http))
        except BaseException as exc:  # reported by the test
            answers.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 60
    while not _sample(running, "embedserve_queue_depth"):  # the call is being embedded
        assert time.monotonic() < deadline and caller.is_alive(), answers
        time.sleep(0.01)
    running.run(running.server.stop(1))
    caller.join(60)
    assert len(answers) == 1, "no answer"
    answer = answers[0]
    assert isinstance(answer, httpx.Response), repr(answer)
    return answer


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    faults = [
        r.getMessage()
        for r in caplog.records
        if r.exc_info or "Exception in ASGI application" in r.getMessage()
    ]
    assert faults == []


@pytest.fixture
def served(start_http_server: Callable[..., Any], minilm_model: Any) -> Any:
    return start_http_server(loaded=minilm_model)


@pytest.mark.parametrize("path", ["/api/v1/embed", "/v1/embeddings"])
def test_a_call_cut_at_the_grace_end_is_answered_unavailable(
    served: Any, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO)
    field = "inputs" if path.startswith("/api/") else "input"
    reply = _cut_at_grace_end(served, lambda http: http.post(path, json={field: _texts(2000)}))
    # It was a plain-text "Internal Server Error", after uvicorn's traceback.
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    if field == "inputs":
        assert error["status"] == "UNAVAILABLE" and error["code"] == 503
    else:  # OpenAI's shape
        assert error["type"] == "server_error"
    assert "shut down" in error["message"]
    line = _access_line(caplog, path)
    assert line.startswith(f"HTTP POST {path} UNAVAILABLE 503 "), line
    assert _count(served, path, "UNAVAILABLE") == 1 and _count(served, path, "INTERNAL") == 0
    _no_traceback(caplog)


def test_a_stream_cut_at_the_grace_end_ends_with_an_unavailable_line(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = "/api/v1/embed-stream"
    line = json.dumps({"request_id": "big", "inputs": _texts(2000)}) + "\n"
    headers = {"content-type": "application/x-ndjson"}
    reply = _cut_at_grace_end(served, lambda http: http.post(path, content=line, headers=headers))
    assert reply.status_code == 200  # sent before the stream's first answer
    # It was cut without a last line, and logged OK 200.
    last = json.loads(reply.text.splitlines()[-1])
    assert last["error"]["status"] == "UNAVAILABLE", last
    access = _access_line(caplog, path)
    assert access.startswith(f"HTTP POST {path} UNAVAILABLE 200 "), access
    assert _count(served, path, "UNAVAILABLE") == 1 and _count(served, path, "OK") == 0
    _no_traceback(caplog)


def test_a_stream_still_sending_at_the_drain_gets_its_whole_answer(served: Any) -> None:
    """The unread rest of a stream's body was read for up to 5 s before the answer's last
    message, past the grace's end: the answer was cut off after its error line."""
    path = "/api/v1/embed-stream"

    def slowly() -> Any:
        for number in range(100):
            yield (json.dumps({"inputs": [f"text {number}"]}) + "\n").encode()
            time.sleep(0.1)

    answers: list[httpx.Response | BaseException] = []

    def call() -> None:
        try:
            with httpx.Client(base_url=served.url, timeout=60) as http:
                headers = {"content-type": "application/x-ndjson"}
                answers.append(http.post(path, content=slowly(), headers=headers))
        except BaseException as exc:  # reported below
            answers.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1.0)  # some lines answered
    served.run(served.server.stop(1))
    caller.join(60)
    (reply,) = answers
    assert isinstance(reply, httpx.Response), repr(reply)  # a whole answer, not a cut one
    *answered, last = [json.loads(line) for line in reply.text.splitlines()]
    assert answered and all("embeddings" in line for line in answered)
    assert last["error"]["status"] == "UNAVAILABLE", last
