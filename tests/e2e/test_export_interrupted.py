"""`embedserve export` that stops half-way: the earlier file stays whole, and so does the
pair of an export and its settings."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main
from embedserve.client.cli_output import replaced_together, replaced_when_done


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


def test_an_export_and_its_settings_are_replaced_as_a_pair(
    minilm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documents were moved into place before the settings were asked for: a server lost
    (or a Ctrl-C) between the two left an earlier export's settings beside the new
    documents, and ingest then made the collection with another collection's settings."""
    target = minilm_server.target
    with EmbedClient(target) as client:
        client.create_collection("plain")
        client.create_collection("small", quantization="scalar_int8")
        for name in ("plain", "small"):
            client.upsert(name, [{"id": f"{name}-1", "text": f"a note in {name}"}])
    backup = tmp_path / "notes.jsonl"
    settings = tmp_path / "notes.jsonl.collection.json"
    assert cli_main(["export", "plain", "-o", str(backup), "--target", target]) == 0
    earlier = (backup.read_bytes(), settings.read_bytes())

    def lost(*args: object, **kwargs: object) -> None:  # a fault no real server gives on cue
        raise ConnectionError("the server went away")

    monkeypatch.setattr(EmbedClient, "get_collection", lost)
    assert cli_main(["export", "small", "-o", str(backup), "--target", target]) == 2
    assert (backup.read_bytes(), settings.read_bytes()) == earlier
    monkeypatch.undo()
    assert cli_main(["export", "small", "-o", str(backup), "--target", target]) == 0
    assert json.loads(settings.read_text())["collection"] == "small"
    assert json.loads(backup.read_text())["id"] == "small-1"


def test_files_replaced_together_stay_a_pair_through_a_signal_between_their_moves(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "a.jsonl.collection.json"
    first.write_text("old\n")
    second.write_text("old\n")

    @contextlib.contextmanager
    def signal_between_the_moves() -> Iterator[None]:
        yield
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, after one file moved

    with pytest.raises(KeyboardInterrupt), replaced_together() as files:
        files.enter_context(replaced_when_done(str(first))).write("new\n")
        files.enter_context(signal_between_the_moves())
        files.enter_context(replaced_when_done(str(second))).write("new\n")
    assert (first.read_text(), second.read_text()) == ("new\n", "new\n")
