"""Per-call context (request id, caller) carried in contextvars.

Set by the interceptors at the start of a call; everything awaited inside the call
(log lines) reads it without threading it through arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# The caller's key_id ("" with auth off); the rate limiter buckets by it.
caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")


def reset(var: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    """Reset, tolerating a stream generator closed from another task's context."""
    with contextlib.suppress(ValueError):
        var.reset(token)
