"""The HTTP listener binds every address its host names, as gRPC does. This machine's
localhost names 127.0.0.1 alone, so the resolver's answer for a two-address name is given
here; the sockets are real."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from running_server import ipv6_loopback

from embedserve.server.http.server import _bind_all

REAL_GETADDRINFO = socket.getaddrinfo
NAMES = {
    "dual.test": ["127.0.0.1", "::1"],
    "half.test": ["127.0.0.1", "2001:db8::1"],  # not this machine's: cannot be bound
    "elsewhere.test": ["192.0.2.1"],
}


def _entry(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in NAMES:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        return [_entry(address, port) for address in NAMES[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_a_name_of_two_addresses_is_served_on_both_at_one_port() -> None:
    """HTTP took the first address alone: a client trying ::1 first (Node's fetch for
    localhost) was refused while gRPC answered it."""
    sockets = _bind_all("dual.test", 0)
    try:
        assert [sock.family for sock in sockets] == [socket.AF_INET, socket.AF_INET6]
        port = sockets[0].getsockname()[1]
        assert sockets[1].getsockname()[1] == port
        for sock in sockets:
            sock.listen()
        assert accepts("127.0.0.1", port) and accepts("::1", port)
    finally:
        for sock in sockets:
            sock.close()


def test_an_address_that_cannot_be_bound_is_left_out_while_one_can() -> None:
    sockets = _bind_all("half.test", 0)
    assert [sock.getsockname()[0] for sock in sockets] == ["127.0.0.1"]
    sockets[0].close()
    with pytest.raises(OSError, match="Cannot assign requested address"):
        _bind_all("elsewhere.test", 0)


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_localhost_is_served_on_both_loopbacks_as_grpc_serves_it() -> None:
    """This machine's localhost names 127.0.0.1 alone; gRPC listens on ::1 too."""
    sockets = _bind_all("localhost", 0)
    try:
        assert {sock.getsockname()[0] for sock in sockets} == {"127.0.0.1", "::1"}
    finally:
        for sock in sockets:
            sock.close()
