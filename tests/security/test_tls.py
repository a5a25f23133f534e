"""TLS and mutual TLS against a real server, with certificates made by the test."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from certs import CA
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from running_server import free_port
from server_records import access_lines

from embedserve.client import EmbedClient
from embedserve.server.errors import FailedPrecondition
from embedserve.server.tls import Certificates, TlsSettings, tls_enabled

FAILS = (grpc.StatusCode.UNAVAILABLE,)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = CA("embedserve test CA"), CA("somebody else's CA")
    (folder / "ca.crt").write_bytes(ca.pem)
    server_cert, server_key = ca.issue("localhost", server=True).write(folder, "server")
    return {
        "ca": ca,
        "other": other,
        "server_cert": server_cert,
        "server_key": server_key,
        "ca_file": str(folder / "ca.crt"),
        "client": ca.issue("client-1", server=False),
        "stranger": other.issue("client-2", server=False),
    }


def embed_code(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    try:
        with EmbedClient(target, credentials=credentials, timeout=10) as client:
            assert client.embed(["over tls"]).shape == (1, 384)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_tls(start_server: Callable[..., Any], minilm_model: Any, pki: dict[str, Any]) -> None:
    running = start_server(
        loaded=minilm_model, tls_cert=pki["server_cert"], tls_key=pki["server_key"]
    )
    good = grpc.ssl_channel_credentials(root_certificates=pki["ca"].pem)
    assert embed_code(running.target, good) == grpc.StatusCode.OK
    assert embed_code(f"localhost:{running.port}", good) == grpc.StatusCode.OK
    # Plaintext against TLS, and a client that trusts another CA: no connection.
    assert embed_code(running.target, None) in FAILS
    wrong = grpc.ssl_channel_credentials(root_certificates=pki["other"].pem)
    assert embed_code(running.target, wrong) in FAILS


def test_mutual_tls(
    start_server: Callable[..., Any], minilm_model: Any, pki: dict[str, Any]
) -> None:
    running = start_server(
        loaded=minilm_model,
        tls_cert=pki["server_cert"],
        tls_key=pki["server_key"],
        tls_client_ca=pki["ca_file"],
    )
    root = pki["ca"].pem
    client, stranger = pki["client"], pki["stranger"]
    with_cert = grpc.ssl_channel_credentials(root, client.key, client.cert)
    assert embed_code(running.target, with_cert) == grpc.StatusCode.OK
    without_cert = grpc.ssl_channel_credentials(root)
    assert embed_code(running.target, without_cert) in FAILS
    foreign_cert = grpc.ssl_channel_credentials(root, stranger.key, stranger.cert)
    assert embed_code(running.target, foreign_cert) in FAILS
    assert embed_code(running.target, None) in FAILS


def test_mutual_tls_over_http(
    start_server: Callable[..., Any], minilm_model: Any, pki: dict[str, Any], tmp_path: Path
) -> None:
    """The HTTP port speaks TLS with the same certificate and checks client certificates."""
    http_port = free_port()
    start_server(
        loaded=minilm_model,
        http_port=http_port,
        tls_cert=pki["server_cert"],
        tls_key=pki["server_key"],
        tls_client_ca=pki["ca_file"],
    )
    client_cert, client_key = pki["client"].write(tmp_path, "client")
    with_cert = ssl.create_default_context(cafile=pki["ca_file"])
    with_cert.load_cert_chain(client_cert, client_key)
    url = f"https://localhost:{http_port}/health"
    with httpx.Client(verify=with_cert) as client:
        assert client.get(url).json() == {"status": "SERVING"}
    without_cert = ssl.create_default_context(cafile=pki["ca_file"])
    with pytest.raises(httpx.HTTPError), httpx.Client(verify=without_cert) as anonymous:
        anonymous.get(url)
    with pytest.raises(httpx.HTTPError), httpx.Client() as plain:
        plain.get(f"http://localhost:{http_port}/health")


def test_tls_with_api_key(
    start_server: Callable[..., Any], minilm_model: Any, pki: dict[str, Any]
) -> None:
    running = start_server(
        loaded=minilm_model,
        tls_cert=pki["server_cert"],
        tls_key=pki["server_key"],
        api_keys="tls-key read",
    )
    creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"].pem)
    with EmbedClient(running.target, credentials=creds, api_key="tls-key") as client:
        assert client.embed(["x"]).shape == (1, 384)
    # TLS does not stand in for the key: over the same secure channel, no key or a wrong one fails.
    for key in (None, "not-a-key"):
        with (
            EmbedClient(running.target, credentials=creds, api_key=key) as client,
            pytest.raises(grpc.RpcError) as refused,
        ):
            client.embed(["x"])
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_half_configured_tls_is_an_error(pki: dict[str, Any], tmp_path: Path) -> None:
    """EmbedServer checks its settings and reads its certificates before binding anything."""
    cert, key, ca = pki["server_cert"], pki["server_key"], pki["ca_file"]
    # Named as flags and variables, as other settings are.
    with pytest.raises(FailedPrecondition) as together:
        tls_enabled(TlsSettings(tls_cert=cert))
    assert together.value.message == (
        "--tls-cert (EMBEDSERVE_TLS_CERT) and --tls-key (EMBEDSERVE_TLS_KEY) must be set together"
    )
    with pytest.raises(FailedPrecondition) as needs:
        tls_enabled(TlsSettings(tls_client_ca=ca))
    assert needs.value.message == (
        "--tls-client-ca (EMBEDSERVE_TLS_CLIENT_CA) needs --tls-cert (EMBEDSERVE_TLS_CERT) "
        "and --tls-key (EMBEDSERVE_TLS_KEY) as well"
    )
    with pytest.raises(FailedPrecondition, match="cannot read --tls-cert"):
        Certificates(TlsSettings(tls_cert=str(tmp_path / "nope"), tls_key=key))
    assert tls_enabled(TlsSettings()) is False
    assert tls_enabled(TlsSettings(tls_cert=cert, tls_key=key, tls_client_ca=ca)) is True


def test_a_renewed_certificate_is_served_without_a_restart(
    start_server: Callable[..., Any],
    minilm_model: Any,
    pki: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """New connections over both transports get the certificate written in place of the
    old one: after SIGHUP, or within the watch's interval. A key that does not match its
    certificate keeps the pair in force."""
    first, renewing = pki["ca"], CA("renewing CA")
    cert, key = first.issue("localhost", server=True).write(tmp_path, "live")
    http_port = free_port()
    running = start_server(loaded=minilm_model, http_port=http_port, tls_cert=cert, tls_key=key)

    def trusted_by(ca: CA) -> tuple[bool, bool]:
        """Whether a client trusting only ``ca`` gets through, over gRPC and HTTP."""
        over_grpc = embed_code(running.target, grpc.ssl_channel_credentials(ca.pem))
        verify = ssl.create_default_context(cadata=ca.pem.decode())
        try:
            with httpx.Client(verify=verify) as client:
                client.get(f"https://localhost:{http_port}/health")
            over_http = True
        except httpx.ConnectError:
            over_http = False
        return over_grpc == grpc.StatusCode.OK, over_http

    async def sighup() -> None:
        running.server.reload()

    assert (trusted_by(first), trusted_by(renewing)) == ((True, True), (False, False))
    renewing.issue("localhost", server=True).write(tmp_path, "live")
    running.run(sighup())
    assert (trusted_by(first), trusted_by(renewing)) == ((False, False), (True, True))

    caplog.set_level(logging.ERROR, logger="embedserve.server.tls")
    Path(key).write_bytes(first.issue("localhost", server=True).key)  # not this cert's key
    running.run(sighup())
    assert "TLS certificate not reloaded" in caplog.text
    assert trusted_by(renewing) == (True, True)

    first.issue("localhost", server=True).write(tmp_path, "live")  # renewed back, no signal
    deadline = time.monotonic() + 15
    while trusted_by(first) != (True, True):
        assert time.monotonic() < deadline, "the changed files were not reloaded"
        time.sleep(0.2)
    assert trusted_by(renewing) == (False, False)
    counted = {
        result: running.server.metrics.registry.get_sample_value(
            "embedserve_reloads_total", {"file": "tls", "result": result}
        )
        for result in ("applied", "refused")
    }
    # (At least: the file watch may also have seen a change before a SIGHUP.)
    assert (counted["applied"] or 0) >= 2 and (counted["refused"] or 0) >= 1


@pytest.fixture
def unusable(pki: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Files a handshake could not use: junk, another certificate's key, an encrypted key."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a PEM file\n")
    _, other_key = pki["ca"].issue("localhost", server=True).write(tmp_path, "other")
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(Path(pki["server_key"]).read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    rsa_key = tmp_path / "rsa.key"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "junk": str(junk),
        "other_key": other_key,
        "encrypted": str(encrypted),
        "rsa_key": str(rsa_key),
    }


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            ("server_cert", "other_key", None),
            "--tls-key (EMBEDSERVE_TLS_KEY) {other_key} is not the key of the certificate in "
            "--tls-cert (EMBEDSERVE_TLS_CERT) {server_cert}",
        ),
        (
            ("server_cert", "rsa_key", None),  # an RSA key beside an EC certificate
            "--tls-key (EMBEDSERVE_TLS_KEY) {rsa_key} is not the key of the certificate in "
            "--tls-cert (EMBEDSERVE_TLS_CERT) {server_cert}",
        ),
        (
            ("junk", "server_key", None),
            "--tls-cert (EMBEDSERVE_TLS_CERT) {junk} holds no PEM certificate",
        ),
        (
            ("server_cert", "junk", None),
            "--tls-key (EMBEDSERVE_TLS_KEY) {junk} holds no usable PEM private key",
        ),
        (
            ("server_cert", "encrypted", None),
            "--tls-key (EMBEDSERVE_TLS_KEY) {encrypted}: the key is encrypted; the server takes "
            "keys without a passphrase",
        ),
        (
            ("server_cert", "server_key", "junk"),
            "--tls-client-ca (EMBEDSERVE_TLS_CLIENT_CA) {junk} holds no PEM CA certificate",
        ),
    ],
    ids=[
        "mismatched-key",
        "other-algorithm-key",
        "junk-cert",
        "junk-key",
        "encrypted-key",
        "junk-client-ca",
    ],
)
def test_unusable_tls_files_are_refused_at_start_naming_flag_and_file(
    pki: dict[str, Any],
    unusable: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: tuple[str, str, str | None],
    expected: str,
) -> None:
    """gRPC found these out only when it bound the port, and said "the port is in use"."""
    from embedserve.server.cli import main

    paths = pki | unusable
    cert, key, ca = (paths[name] if name else "" for name in files)
    message = expected.format(**paths)
    with pytest.raises(FailedPrecondition) as refused:
        Certificates(TlsSettings(tls_cert=cert, tls_key=key, tls_client_ca=ca))
    assert refused.value.message == message
    flags = ["--tls-cert", cert, "--tls-key", key, "--port", "0", "--http-port", "0"]
    flags += ["--tls-client-ca", ca] if ca else []
    assert main(["serve", *flags, "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err == f"embedserve: {message}\n"


def presented_certificate(
    server: ssl.SSLContext, client: ssl.SSLContext, name: str | None
) -> bytes:
    """The certificate (DER) ``server`` presents to ``client`` in a handshake in memory."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    served = server.wrap_bio(to_server, to_client, server_side=True)
    asking = client.wrap_bio(to_client, to_server, server_hostname=name)
    done: set[ssl.SSLObject] = set()
    while len(done) < 2:
        for side in (asking, served):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
                done.add(side)
    certificate = asking.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def test_a_renewed_certificate_of_another_key_type_replaces_the_old_one_over_http(
    pki: dict[str, Any], tmp_path: Path
) -> None:
    """OpenSSL keeps one certificate per key type in a context: an RSA pair loaded into
    the live HTTP context left the EC pair it replaced served to every client that offers
    ECDSA (curl, Python, OpenSSL's defaults), a retired key in use until a restart."""
    renewing = CA("renewing CA")
    ec_pair, rsa_pair = (
        pki["ca"].issue("localhost", True),
        renewing.issue("localhost", True, rsa_key=True),
    )
    cert, key = ec_pair.write(tmp_path, "live")
    live = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    live.load_cert_chain(cert, key)  # as the HTTP server loads the files at start
    certificates = Certificates(TlsSettings(tls_cert=cert, tls_key=key))
    certificates.serve_http(live)
    client = ssl.create_default_context(cadata=pki["ca"].pem.decode() + renewing.pem.decode())
    der = serialization.Encoding.DER

    def presented(name: str | None) -> bytes:
        client.check_hostname = name is not None
        return presented_certificate(live, client, name)

    for pair, issuer in ((rsa_pair, renewing), (ec_pair, pki["ca"])):
        pair.write(tmp_path, "live")
        assert certificates.reload() is True
        issued = x509.load_pem_x509_certificate(pair.cert).public_bytes(der)
        assert presented("localhost") == presented(None) == issued, issuer.name


def test_reloads_while_the_certificate_is_rewritten_in_place(
    pki: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file written in place (cp, cat >) is seen half-written by some reloads: each keeps
    the pair in force or applies a whole one, and never raises (an error out of a reload
    ended the file watch, silently). One read of the files serves the check and both
    transports, so what was checked is what is served."""
    cert, key = pki["ca"].issue("localhost", server=True).write(tmp_path, "live")
    certificates = Certificates(TlsSettings(tls_cert=cert, tls_key=key))
    certificates.serve_http(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    whole = Path(cert).read_bytes()
    stop = threading.Event()

    def rewrite_in_place() -> None:
        while not stop.is_set():
            for content in (whole, whole[: len(whole) // 2]):
                with open(cert, "wb") as file:
                    file.write(content)

    writer = threading.Thread(target=rewrite_in_place)
    writer.start()
    try:
        outcomes = [certificates.reload() for _ in range(300)]
    finally:
        stop.set()
        writer.join()
    assert set(outcomes) <= {True, False}
    Path(cert).write_bytes(whole)
    assert certificates.reload() is True
    Path(key).unlink()
    caplog.set_level(logging.ERROR, logger="embedserve.server.tls")
    assert certificates.reload() is False
    assert f"cannot read --tls-key (EMBEDSERVE_TLS_KEY) {key}" in caplog.text  # which file


def test_a_stalled_body_over_tls_is_dropped_at_once(
    start_server: Callable[..., Any],
    minilm_model: Any,
    pki: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closed politely, a TLS connection waited 30 s more for its client's closing
    handshake, an open file all the while."""
    port = free_port()
    start_server(
        loaded=minilm_model,
        http_port=port,
        tls_cert=pki["server_cert"],
        tls_key=pki["server_key"],
        http_body_idle_s=1.0,
    )
    caplog.set_level(logging.INFO, logger="embedserve.access")
    context = ssl.create_default_context(cafile=pki["ca_file"])
    head = b"POST /api/v1/embed HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\n{"
    with (
        socket.create_connection(("127.0.0.1", port), timeout=60) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(head)
        with contextlib.suppress(OSError):  # a reset, or TLS's own end
            while sock.recv(65536):
                pass
        # The call ends (its access line) while this client still holds its socket.
        (line,) = access_lines(caplog, "HTTP POST /api/v1/embed ", wait_s=10)
    assert " CANCELLED 499 " in line
