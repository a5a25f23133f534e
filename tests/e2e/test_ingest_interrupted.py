"""`embedserve ingest` interrupted with Ctrl-C: it says how far it got and how to go on, and
the same command goes on from there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from embedserve.client import EmbedClient


def test_an_interrupted_ingest_says_how_to_continue_and_continues(
    minilm_server, tmp_path: Path
) -> None:
    """It ended on its progress line, saying nothing (reembed says how far it got)."""
    target = minilm_server.target
    source = tmp_path / "notes.jsonl"
    count = 3000
    source.write_text(
        "".join(
            json.dumps({"id": f"n{i}", "text": f"note {i} on topic {i % 17}"}) + "\n"
            for i in range(count)
        )
    )
    command = [sys.executable, "-m", "embedserve.server.cli", "ingest", str(source), "-c", "notes"]
    command += ["--target", target, "--batch-size", "16"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=1)
    assert process.stderr is not None
    shown = ""
    while " docs/s" not in shown:  # the first acknowledgement
        shown += process.stderr.read(1) or pytest.fail(f"ingest ended early: {shown}")
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=120)[1]
    assert process.returncode == 130, shown + rest
    assert "run the same command to continue" in rest and "interrupted after " in rest
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    with EmbedClient(target) as client:
        assert client.count("notes") == count
