"""Server TLS credentials from PEM files; a client CA turns on mutual TLS."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc

from embedserve.server.errors import FailedPrecondition


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """The TLS section of the settings, for both transports."""

    tls_cert: str = ""  # PEM server certificate (chain); with tls_key, the port speaks TLS
    tls_key: str = ""
    tls_client_ca: str = ""  # PEM CA: require client certificates signed by it (mTLS)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FailedPrecondition(f"cannot read {what} {path}: {exc.strerror}") from exc


def server_credentials(settings: TlsSettings) -> grpc.ServerCredentials | None:
    """``None`` for plaintext. Half a configuration is an error, never a silent plaintext."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.tls_client_ca:
            raise FailedPrecondition("tls_client_ca needs tls_cert and tls_key as well")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise FailedPrecondition("tls_cert and tls_key must be set together")
    pair = (_read(settings.tls_key, "TLS key"), _read(settings.tls_cert, "TLS certificate"))
    client_ca = _read(settings.tls_client_ca, "client CA") if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
