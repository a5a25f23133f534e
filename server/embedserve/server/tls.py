"""Server TLS from PEM files; a client CA turns on mutual TLS. The certificate and key are
read again while serving (see file_watch), so a renewed certificate needs no restart."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
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


@dataclasses.dataclass(frozen=True)
class Pem:
    """A certificate (chain) and its key, as read from their files once."""

    cert: bytes
    key: bytes


CERT = "--tls-cert (EMBEDSERVE_TLS_CERT)"
KEY = "--tls-key (EMBEDSERVE_TLS_KEY)"
CLIENT_CA = "--tls-client-ca (EMBEDSERVE_TLS_CLIENT_CA)"


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FailedPrecondition(f"cannot read {what} {path}: {exc.strerror}") from exc


def _no_passphrase() -> bytes:
    # gRPC cannot take a key that needs one; without this, OpenSSL would ask on the terminal.
    raise ValueError("the key is encrypted; the server takes keys without a passphrase")


@contextlib.contextmanager
def _as_files(pem: Pem) -> Iterator[tuple[str, str]]:
    """``pem`` as files this process alone reads: ssl loads only from paths, and one read
    of the real files then serves the check and both transports (a file rewritten between
    two reads cannot slip past the check). In memory where the system has memfd (Linux):
    the key is not copied to a disk."""
    if not hasattr(os, "memfd_create"):
        with tempfile.TemporaryDirectory(prefix="embedserve-tls-") as folder:  # mode 0700
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(pem.cert)
            key.write_bytes(pem.key)
            yield str(cert), str(key)
        return
    fds = [os.memfd_create(name) for name in ("embedserve-tls-cert", "embedserve-tls-key")]
    try:
        for fd, data in zip(fds, (pem.cert, pem.key), strict=True):
            with open(fd, "wb", closefd=False) as file:
                file.write(data)
        yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
    finally:
        for fd in fds:
            os.close(fd)


def check_pair(cert: str, key: str, pem: Pem) -> None:
    """Refuse a certificate and key (``pem``, read from files ``cert`` and ``key``) the
    handshakes could not use (FailedPrecondition naming the flag and the file): gRPC only
    found out when it bound the port, and said the port was in use."""
    with _as_files(pem) as (cert_file, key_file):
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                cert_file, key_file, _no_passphrase
            )
        except ssl.SSLError as exc:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=cert_file)
            except ssl.SSLError:
                raise FailedPrecondition(f"{CERT} {cert} holds no PEM certificate") from exc
            # A key of another algorithm than the certificate's (EC against RSA) finds no
            # certificate to go with.
            if exc.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
                raise FailedPrecondition(
                    f"{KEY} {key} is not the key of the certificate in {CERT} {cert}"
                ) from exc
            raise FailedPrecondition(f"{KEY} {key} holds no usable PEM private key") from exc
        except ValueError as exc:  # the passphrase
            raise FailedPrecondition(f"{KEY} {key}: {exc}") from exc


def _certificates_text(pem: bytes) -> str:
    """The PEM certificates of a file, as the ASCII text ssl's ``cadata`` takes (a comment
    beside them may hold other bytes)."""
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    return "\n".join(block.decode("ascii") for block in blocks)


def check_client_ca(ca: str) -> None:
    """Refuse a client CA file that holds no certificate, naming the flag and the file."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise FailedPrecondition(f"{CLIENT_CA} {ca} holds no PEM CA certificate") from exc


def tls_enabled(settings: TlsSettings) -> bool:
    """Half a configuration is an error, never a silent plaintext."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.tls_client_ca:
            raise FailedPrecondition(f"{CLIENT_CA} needs {CERT} and {KEY} as well")
        return False
    if not (settings.tls_cert and settings.tls_key):
        raise FailedPrecondition(f"{CERT} and {KEY} must be set together")
    return True


class Certificates(WatchedFiles):
    """The server's certificate and key for both transports. A reload reaches the
    connections made after it (open ones keep theirs); the client CA is read at start."""

    def __init__(self, settings: TlsSettings, record: Callable[[bool], None] | None = None) -> None:
        self._settings = settings
        ca = settings.tls_client_ca
        self._client_ca = _read(ca, CLIENT_CA) if ca else None
        pem = self._read_pem()
        # Checked as a handshake would use them (as a reload checks them).
        check_pair(settings.tls_cert, settings.tls_key, pem)
        self._initial = self._configuration(pem)
        self._in_force = pem
        if ca:
            check_client_ca(ca)
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()  # gRPC fetches from its own threads
        self._http: ssl.SSLContext | None = None  # the HTTP handshakes' context, once serving
        super().__init__([settings.tls_cert, settings.tls_key], record)

    def _read_pem(self) -> Pem:
        return Pem(_read(self._settings.tls_cert, CERT), _read(self._settings.tls_key, KEY))

    def _configuration(self, pem: Pem) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(pem.key, pem.cert)], root_certificates=self._client_ca
        )

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
        """Each handshake of the HTTP server's ``context`` takes a context of the pair in
        force. (Loaded into the live context, a reload replaced only the certificate of
        its own key type: OpenSSL keeps one per type, so an EC pair stayed served to
        clients that offer ECDSA after an RSA one replaced it.)"""
        self._http = self._http_context(self._in_force)
        context.sni_callback = self._to_pair_in_force  # called with or without a name

    def _to_pair_in_force(
        self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        assert self._http is not None
        connection.context = self._http

    def _http_context(self, pem: Pem) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with _as_files(pem) as (cert_file, key_file):
            context.load_cert_chain(cert_file, key_file)
        if self._client_ca is not None:
            context.load_verify_locations(cadata=_certificates_text(self._client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _load(self) -> bool:
        cert, key = self._settings.tls_cert, self._settings.tls_key
        try:
            pem = self._read_pem()
            # A key that does not match its certificate fails here, before anything changes.
            check_pair(cert, key, pem)
        except EmbedServeError as exc:
            log.error("TLS certificate not reloaded, the one in force kept: %s", exc)
            return False
        with self._lock:
            self._pending = self._configuration(pem)
        if self._http is not None:
            self._http = self._http_context(pem)
        self._in_force = pem
        log.info("TLS certificate reloaded from %s", cert)
        return True
