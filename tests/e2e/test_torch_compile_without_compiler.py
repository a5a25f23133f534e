"""``serve --torch-compile`` on a machine without a C++ compiler (as the slim images were):
inductor's InvalidCxxCompiler, raised at warm-up, used to end the server with a raw
traceback. It now refuses to start as other startup errors do: exit 2 and one line
naming the flag, the reason and the remedy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from running_server import free_port

from embedserve.server.compiled import CompiledEncoder
from embedserve.server.errors import ModelLoadError

CLI = [sys.executable, "-m", "embedserve.server.cli"]
REPO = Path(__file__).resolve().parents[2]


def test_missing_compiler_is_a_clean_startup_error(tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "PYTHONPATH": os.pathsep.join(str(REPO / r) for r in ("server", "connectors")),
        "HF_HUB_OFFLINE": "1",
        "EMBEDSERVE_HTTP_PORT": "0",
        "EMBEDSERVE_METRICS_PORT": "0",
        # Inductor reads its compiler from CXX; a fresh cache dir, so that no kernel
        # compiled by an earlier run can stand in for the missing compiler.
        "CXX": str(tmp_path / "no-such-g++"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
        "EMBEDSERVE_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [*CLI, "serve", "--model", "minilm", "--torch-compile", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "embedserve: --torch-compile: InvalidCxxCompiler: " in result.stderr
    assert "no-such-g++" in result.stderr and "start without --torch-compile" in result.stderr
    assert "Traceback" not in result.stderr


def fails_with(exc: Exception) -> CompiledEncoder:
    encoder = CompiledEncoder.__new__(CompiledEncoder)

    def run(**_: object) -> None:
        raise exc

    encoder._run = run
    return encoder


def test_triton_build_failures_outside_inductor_are_clean_too() -> None:
    """On CUDA, Triton builds its launchers with a C compiler and Python's headers, at times
    outside inductor's wrapper; other failures of the warm-up pass stay what they are."""
    triton = RuntimeError("Failed to find C compiler. Please specify via CC environment variable")
    headers = subprocess.CalledProcessError(1, ["gcc", "main.c", "-I/usr/include/python3.12"])
    for exc in (triton, headers):
        with pytest.raises(ModelLoadError, match=r"^--torch-compile: .*start without"):
            fails_with(exc).warm_up([1], torch.device("cpu"))
    with pytest.raises(RuntimeError, match="out of memory"):
        fails_with(RuntimeError("CUDA out of memory")).warm_up([1], torch.device("cpu"))
