"""Server TLS from PEM files; a client CA turns on mutual TLS. The certificate and key are
read again while serving (see file_watch), so a renewed certificate needs no restart."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import grpc

from embedserve.server.errors import EmbedServeError, FailedPrecondition
from embedserve.server.file_watch import WatchedFiles

log = logging.getLogger(__name__)


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


def tls_enabled(settings: TlsSettings) -> bool:
    """Half a configuration is an error, never a silent plaintext."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.tls_client_ca:
            raise FailedPrecondition("tls_client_ca needs tls_cert and tls_key as well")
        return False
    if not (settings.tls_cert and settings.tls_key):
        raise FailedPrecondition("tls_cert and tls_key must be set together")
    return True


class Certificates(WatchedFiles):
    """The server's certificate and key for both transports. A reload reaches the
    connections made after it (open ones keep theirs); the client CA is read at start."""

    def __init__(self, settings: TlsSettings, record: Callable[[bool], None] | None = None) -> None:
        self._settings = settings
        ca = settings.tls_client_ca
        self._client_ca = _read(ca, "client CA") if ca else None
        self._initial = self._configuration()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()  # gRPC fetches from its own threads
        self._contexts: list[ssl.SSLContext] = []
        super().__init__([settings.tls_cert, settings.tls_key], record)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        pair = (
            _read(self._settings.tls_key, "TLS key"),
            _read(self._settings.tls_cert, "TLS certificate"),
        )
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=self._client_ca)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._fetch,  # type: ignore[arg-type]  # grpc's stubs leave out its None
            require_client_authentication=self._client_ca is not None,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # gRPC asks before each new connection's handshake; None keeps the current pair.
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def serve_http(self, context: ssl.SSLContext) -> None:
        """Reloads reach this (the HTTP server's) context too."""
        self._contexts.append(context)

    def _load(self) -> bool:
        cert, key = self._settings.tls_cert, self._settings.tls_key
        try:
            # A key that does not match its certificate fails here, before anything changes.
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
            configuration = self._configuration()
        except (OSError, EmbedServeError) as exc:
            log.error("TLS certificate not reloaded, the one in force kept: %s", exc)
            return False
        with self._lock:
            self._pending = configuration
        for context in self._contexts:
            context.load_cert_chain(cert, key)
        log.info("TLS certificate reloaded from %s", cert)
        return True
