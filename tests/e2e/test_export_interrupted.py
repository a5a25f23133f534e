"""`embedserve export` that stops half-way: the earlier file stays whole."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main


def test_an_interrupted_export_leaves_the_earlier_file_as_it_was(
    minilm_server, tmp_path: Path
) -> None:
    """It wrote straight into the file: a nightly backup cut short (Ctrl-C here, a lost
    server or a full disk alike) replaced the last good one with its first lines."""
    target = minilm_server.target
    with EmbedClient(target) as client:
        client.create_collection("notes")
        documents = [{"id": f"n{i}", "text": f"note {i} on topic {i % 17}"} for i in range(3000)]
        list(client.ingest_iter("notes", documents, batch_size=500))
    backup = tmp_path / "notes.jsonl"
    assert cli_main(["export", "notes", "-o", str(backup), "--target", target]) == 0
    good = backup.read_bytes()
    assert len(good.splitlines()) == 3000

    partial = tmp_path / "notes.jsonl.partial"
    command = [sys.executable, "-m", "embedserve.server.cli", "export", "notes", "-o"]
    # Pages of one document: the rest of the export outlasts a test starved of CPU for
    # seconds between seeing the partial file and sending the signal.
    command += [str(backup), "--target", target, "--page-size", "1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 20_000):  # some pages in
        assert process.poll() is None, "the export ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 130
    assert backup.read_bytes() == good
    assert not partial.exists()

    assert cli_main(["export", "notes", "-o", str(backup), "--target", target]) == 0
    assert [json.loads(line)["id"] for line in backup.read_text().splitlines()] == [
        json.loads(line)["id"] for line in good.decode().splitlines()
    ]
    assert not partial.exists()
