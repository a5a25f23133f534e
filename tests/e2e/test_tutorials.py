"""Every shell and Python block of docs/tutorials runs, in order, against a live server, so
the tutorials cannot drift from the product."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import CLI, cli_env, free_port

from embedserve.client import EmbedClient

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((REPO / "docs" / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = cli_env() | {
        "EMBEDSERVE_MODEL": "minilm",
        "EMBEDSERVE_DATA_DIR": str(tmp_path_factory.mktemp("data")),
    }
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--grace-period-s", "1"], env=env
    )
    target = f"127.0.0.1:{port}"
    try:
        with EmbedClient(target) as client:
            client.wait_until_serving(timeout=300)
        yield target
    finally:
        process.terminate()
        assert process.wait(120) == 0


def test_every_page_has_blocks() -> None:
    assert TUTORIALS
    for page in TUTORIALS:
        assert blocks(page), page.name


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_blocks_run(page: Path, served: str, tmp_path: Path) -> None:
    # A scratch folder that looks like the repository root for the paths the pages use.
    shutil.copytree(REPO / "docs" / "data", tmp_path / "docs" / "data")
    bin_dir = Path(sys.executable).parent
    env = cli_env() | {
        "EMBEDSERVE_TARGET": served,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
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
