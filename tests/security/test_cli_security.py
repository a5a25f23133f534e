"""The console script's client commands reach a TLS server with a key from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certs import CA

CLI = [sys.executable, "-m", "embedserve.server.cli"]


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    repo = Path(__file__).resolve().parents[2]
    roots = ["server", "connectors", "clients/python"]
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(repo / r) for r in roots))
    full_env.pop("EMBEDSERVE_API_KEY", None)
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=full_env | env, timeout=120
    )


def test_cli_with_key_and_tls(
    start_server: Callable[..., Any], minilm_model: Any, tmp_path: Path
) -> None:
    ca = CA("cli CA")
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    cert, key = ca.issue("localhost", server=True).write(tmp_path, "server")
    running = start_server(
        loaded=minilm_model, tls_cert=cert, tls_key=key, api_keys="cli-secret read"
    )
    tls = {"EMBEDSERVE_TLS_CA": str(tmp_path / "ca.crt")}

    denied = run_cli(tls, "info", "--target", running.target)
    assert denied.returncode == 1
    assert "UNAUTHENTICATED" in denied.stderr

    ok = run_cli(tls | {"EMBEDSERVE_API_KEY": "cli-secret"}, "info", "--target", running.target)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["dimensions"] == 384

    plaintext = run_cli({"EMBEDSERVE_API_KEY": "cli-secret"}, "info", "--target", running.target)
    assert plaintext.returncode == 1


def test_cli_names_the_certificates_server_where_the_target_is_another(
    start_server: Callable[..., Any], minilm_model: Any, tmp_path: Path
) -> None:
    """A probe inside a pod dials localhost; the certificate names the Service."""
    ca = CA("cli CA")
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    issued = ca.issue("embed", server=True, names=("embedserve.search.svc",))
    cert, key = issued.write(tmp_path, "server")
    running = start_server(loaded=minilm_model, tls_cert=cert, tls_key=key)
    tls = {"EMBEDSERVE_TLS_CA": str(tmp_path / "ca.crt")}

    mismatched = run_cli(tls, "health", "--target", running.target)
    assert mismatched.returncode == 1 and "UNAVAILABLE" in mismatched.stderr
    named = tls | {"EMBEDSERVE_TLS_SERVER_NAME": "embedserve.search.svc"}
    served = run_cli(named, "health", "--target", running.target)
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip() == "SERVING"
