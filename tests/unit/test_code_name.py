"""The status a cancelled call is counted, logged and traced with."""

from __future__ import annotations

import asyncio

import pytest

from embedserve.server.call_hooks import code_name


class Call:
    """A call the caller ended (or whose handler returned), with ``remaining`` seconds of
    the server's deadline left."""

    def __init__(self, remaining: float | None, cancelled: bool = True) -> None:
        self.remaining = remaining
        self._cancelled = cancelled

    def cancelled(self) -> bool:
        return self._cancelled

    def time_remaining(self) -> float | None:
        return self.remaining

    def code(self) -> None:
        return None


@pytest.mark.parametrize(
    ("remaining", "code"),
    [
        # The caller's deadline ran out a moment before the server's: its cancel arrives
        # first. These were counted CANCELLED while the caller saw DEADLINE_EXCEEDED.
        (0.001, "DEADLINE_EXCEEDED"),
        (0.05, "DEADLINE_EXCEEDED"),
        (0.0, "DEADLINE_EXCEEDED"),
        (-1.0, "DEADLINE_EXCEEDED"),
        (2.0, "CANCELLED"),  # the caller gave up well before its deadline
        (None, "CANCELLED"),  # no deadline at all
    ],
)
def test_a_cancel_at_the_deadline_is_the_deadline(remaining: float | None, code: str) -> None:
    call = Call(remaining)
    assert code_name(call, None) == code  # type: ignore[arg-type]
    assert code_name(call, asyncio.CancelledError()) == code  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("remaining", "code"), [(0.0, "DEADLINE_EXCEEDED"), (0.01, "OK"), (None, "OK")]
)
def test_a_handler_that_returned_past_the_deadline_is_the_deadline(
    remaining: float | None, code: str
) -> None:
    assert code_name(Call(remaining, cancelled=False), None) == code  # type: ignore[arg-type]
