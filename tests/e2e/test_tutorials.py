"""Every shell and Python block of docs/tutorials runs, in order, against a live server, so
the tutorials cannot drift from the product. Other fences (```console) are shown, not run.

A page runs against a server on the embedded store; pages listed in BACKENDS run once per
backend named there ("qdrant-server": a real Qdrant server from QDRANT_BIN, skipped when
it is unset)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import cli_env, cli_server, free_port

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((REPO / "docs" / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BACKENDS = {"vector-databases": ("embedded", "qdrant-server")}
RUNS = [
    pytest.param(page, backend, id=f"{page.stem}-{backend}")
    for page in TUTORIALS
    for backend in BACKENDS.get(page.stem, ("embedded",))
]


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def serve(
    tmp_path_factory: pytest.TempPathFactory, settings: dict[str, str]
) -> Iterator[dict[str, str]]:
    """A server on free ports; ``settings`` are EMBEDSERVE_* variables. Yields what the
    pages read: EMBEDSERVE_TARGET, and EMBEDSERVE_HTTP (host:port) when HTTP is on."""
    data_dir = tmp_path_factory.mktemp("data")
    with cli_server(data_dir, settings, args=("--grace-period-s", "1"), stop_s=120) as target:
        http_port = settings.get("EMBEDSERVE_HTTP_PORT", "0")
        http = {} if http_port == "0" else {"EMBEDSERVE_HTTP": f"127.0.0.1:{http_port}"}
        yield {"EMBEDSERVE_TARGET": target, **http}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from serve(tmp_path_factory, {"EMBEDSERVE_HTTP_PORT": str(free_port())})


@pytest.fixture(scope="module")
def served_on_qdrant(
    tmp_path_factory: pytest.TempPathFactory, qdrant_session: Any
) -> Iterator[dict[str, str]]:
    """A server whose store is the session's real Qdrant server (and no HTTP port)."""
    qdrant_session.delete_all_collections()
    settings = {f"EMBEDSERVE_{k.upper()}": str(v) for k, v in qdrant_session.settings().items()}
    yield from serve(tmp_path_factory, settings)


def test_every_page_has_blocks() -> None:
    assert TUTORIALS
    for page in TUTORIALS:
        assert blocks(page), page.name


@pytest.mark.slow
@pytest.mark.parametrize(("page", "backend"), RUNS)
def test_tutorial_blocks_run(
    page: Path, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    served = request.getfixturevalue("served_on_qdrant" if backend == "qdrant-server" else "served")
    # A scratch folder that looks like the repository root for the paths the pages use.
    shutil.copytree(REPO / "docs" / "data", tmp_path / "docs" / "data")
    bin_dir = Path(sys.executable).parent
    env = cli_env() | served | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for number, (language, code) in enumerate(blocks(page), 1):
        command = (
            ["bash", "-euo", "pipefail", "-c", code]
            if language == "bash"
            else [sys.executable, "-c", code]
        )
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, (
            f"{page.name} block {number} ({language}) failed:\n{code}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
