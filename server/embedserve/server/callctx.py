"""Per-call context (request id, caller) carried in contextvars.

Set by the interceptors at the start of a call; everything awaited inside the call
(log lines) reads it without threading it through arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# The caller's key_id ("" with auth off); the rate limiter buckets by it.
caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")


@dataclasses.dataclass
class Call:
    """What a call's access log line names besides its method and code, filled in as the
    call goes: the outermost hook (observe) sets it, writes the line last, and by then the
    hooks inside it have ended and reset what they set."""

    key_id: str = ""  # the key the call was let in with; "" without one


call: contextvars.ContextVar[Call | None] = contextvars.ContextVar("call", default=None)


def set_caller(key_id: str) -> contextvars.Token[str]:
    """Name the call's caller by its key: for the rate limiter, log lines and the access
    log line (written after the hook that set it has reset it)."""
    current = call.get()
    if current is not None:
        current.key_id = key_id
    return caller.set(key_id)


def key_id() -> str:
    """The current call's key_id: set now, or (its access line) set during the call."""
    current = call.get()
    return caller.get() or (current.key_id if current is not None else "")


def reset(var: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    """Reset, tolerating a stream generator closed from another task's context."""
    with contextlib.suppress(ValueError):
        var.reset(token)
