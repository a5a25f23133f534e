"""``pip install ./clients/python`` alone (no torch, no server code) gives a working
``embedserve`` command for the client verbs, against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedserve.client import EmbedClient

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    {"id": f"{topic}-{n}", "text": text, "payload": {"topic": topic}}
    for n, (topic, text) in enumerate(
        [
            ("space", "the rocket carried astronauts into orbit"),
            ("cooking", "simmer the pasta sauce with garlic"),
            ("space", "a telescope photographed a distant galaxy"),
            ("cooking", "bake the bread in a hot oven"),
            ("space", "the satellite circles the moon"),
        ]
    )
]


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("client-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")),
            *("install", "--quiet", "--disable-pip-version-check", str(REPO / "clients/python")),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr
    return venv


def run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(venv / "bin" / "embedserve"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=venv,
        timeout=120,
    )


def test_the_client_package_holds_no_server_and_no_torch(client_venv: Path) -> None:
    probe = subprocess.run(
        [
            str(client_venv / "bin" / "python"),
            "-c",
            "import importlib.util as u; "
            "print([m for m in ('torch', 'embedserve.server', 'embedserve.client.cli') "
            "if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        cwd=client_venv,
    )
    assert probe.stdout.strip() == "['embedserve.client.cli']", probe.stderr
    usage = run(client_venv, "--help").stdout
    for verb in ("embed", "info", "tokenize", "health", "ingest", "search", "recommend"):
        assert verb in usage
    assert run(client_venv, "serve").returncode == 2  # the server package adds serve


def test_embed_ingest_and_search_from_the_client_package(
    client_venv: Path, minilm_server, tmp_path: Path
) -> None:
    target = minilm_server.target
    embedded = run(client_venv, "embed", "--target", target, "first text", "second text")
    assert embedded.returncode == 0, embedded.stderr
    rows = [json.loads(line) for line in embedded.stdout.splitlines()]
    with EmbedClient(target) as client:
        expected = client.embed(["first text", "second text"])
    assert np.abs(np.array([r["embedding"] for r in rows]) - expected).max() < 1e-6

    corpus = tmp_path / "notes.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    ingested = run(
        client_venv, "ingest", str(corpus), "-c", "notes", "--batch-size", "2", "--target", target
    )
    assert ingested.returncode == 0, ingested.stderr
    assert "ingested 5 documents" in ingested.stderr
    checkpoint = json.loads((tmp_path / "notes.jsonl.progress").read_text())
    assert checkpoint.pop("prefix_sha256")  # the digest of the documents acknowledged
    assert checkpoint.pop("options") == {"store_text": False, "split": False}
    assert checkpoint == {"acknowledged": 5, "last_id": "space-4", "collection": "notes"}

    found = run(client_venv, "search", "notes", "astronauts in orbit", "--target", target)
    assert found.returncode == 0, found.stderr
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert hits[0]["id"] == "space-0"
    assert [h["payload"]["topic"] for h in hits[:3]] == ["space"] * 3
    assert run(client_venv, "collections", "--target", target).stdout.split() == ["notes"]


def test_map_without_the_maps_extra_names_the_extra(client_venv: Path) -> None:
    # The client package alone has no scikit-learn, umap or matplotlib: the command says
    # what to install before it reaches for a server.
    done = run(client_venv, "map", "notes", "--method", "umap", "-o", "notes.png")
    assert done.returncode == 2
    assert "pip install 'embedserve[maps]'" in done.stderr
    assert "sklearn, umap, matplotlib" in done.stderr
    assert not (client_venv / "notes.png").exists()
