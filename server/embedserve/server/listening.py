"""A port the server cannot listen on, named with its flag instead of a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from embedserve.server.errors import FailedPrecondition


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:50051``), as gRPC takes it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class CannotListen(FailedPrecondition):
    """A port is taken or the host is not this machine's: ``serve`` exits 2 saying which."""


@contextlib.contextmanager
def cannot_listen(what: str, host: str, port: int, flag: str) -> Iterator[None]:
    """Turn the OSError of binding ``host:port`` into CannotListen naming ``flag``."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CannotListen(
            f"cannot listen for {what} on {host_port(host, port)} (--host, {flag}): {reason}"
        ) from exc
