"""A gRPC call still running when the drain's grace period is over is cancelled by the
server, and its caller sees UNAVAILABLE ("Cancelling all calls"): the access log and
rpc_total record that status, as the caller sees it. A caller's own cancel during the drain
is still CANCELLED.

Each call here embeds far more than the server computes while the test runs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from typing import Any

import grpc
import pytest
from server_records import access_lines, rpc_count, sample

from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc

_METHOD = "/embedserve.v1.EmbeddingService/Embed"
_GREEK = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
)
_WORDS = _GREEK.split()


def _big_request() -> epb.EmbedRequest:
    chosen = random.Random(5)
    texts = [" ".join(chosen.choice(_WORDS) for _ in range(150)) for _ in range(2000)]
    return epb.EmbedRequest(inputs=texts)


def _sample(running: Any, name: str, **labels: str) -> float:
    return sample(running, name, **labels)


def _count(running: Any, code: str) -> float:
    return rpc_count(running, _METHOD, code, "grpc")


def _wait_until_embedding(running: Any) -> None:
    deadline = time.monotonic() + 60
    while not _sample(running, "embedserve_queue_depth"):
        assert time.monotonic() < deadline, "the call never reached the model"
        time.sleep(0.01)


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [line for line in access_lines(caplog, _METHOD) if line.startswith(_METHOD)]


@pytest.fixture
def served(start_server: Any, minilm_model: Any) -> Any:
    return start_server(loaded=minilm_model)


def test_a_call_cut_at_the_grace_end_is_recorded_unavailable(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    errors: list[grpc.RpcError] = []

    def call() -> None:
        with grpc.insecure_channel(served.target) as channel:
            try:
                epb_grpc.EmbeddingServiceStub(channel).Embed(_big_request(), timeout=60)
            except grpc.RpcError as exc:
                errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    _wait_until_embedding(served)
    served.run(served.server.stop(1))
    caller.join(60)
    assert [e.code() for e in errors] == [grpc.StatusCode.UNAVAILABLE]
    # The caller saw UNAVAILABLE, the server recorded CANCELLED.
    lines = _access_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith(f"{_METHOD} UNAVAILABLE "), lines
    assert _count(served, "UNAVAILABLE") == 1 and _count(served, "CANCELLED") == 0


def test_a_call_its_caller_cancels_during_the_drain_is_still_cancelled(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with grpc.insecure_channel(served.target) as channel:
        future = epb_grpc.EmbeddingServiceStub(channel).Embed.future(_big_request(), timeout=60)
        _wait_until_embedding(served)
        stopping = asyncio.run_coroutine_threadsafe(served.server.stop(30), served.loop)
        deadline = time.monotonic() + 30
        while not served.server.drain.started:
            assert time.monotonic() < deadline, "the drain did not start"
            time.sleep(0.01)
        future.cancel()
        stopping.result(30)  # the call ended: no need to wait for the grace
    lines = _access_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith(f"{_METHOD} CANCELLED "), lines
    assert _count(served, "CANCELLED") == 1 and _count(served, "UNAVAILABLE") == 0
