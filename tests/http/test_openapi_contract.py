"""The OpenAPI document is the HTTP API's contract: schemathesis checks a live server by it.

Requests come from the document (valid ones, edge values, and ones it forbids); each
answer must be no server error, a status the document lists with a body of its schema,
a refusal for what the document forbids, and 405 with an Allow header for a verb a path
does not take. tests/http/schemathesis.toml holds the settings, schemathesis_hooks.py
the NDJSON ingestion body and its check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
# Per route and phase. The coverage phase adds its own edge cases (about 1,600 requests):
# the whole run takes under a minute on 2 cores.
MAX_EXAMPLES = 50


def test_the_server_keeps_its_openapi_document(
    start_http_server: Any, minilm_model: Any, tiny_reranker_path: Path, tmp_path: Path
) -> None:
    both = start_http_server(loaded=minilm_model, reranker=str(tiny_reranker_path))
    with httpx.Client(base_url=both.url, timeout=60) as http:
        created = http.post("/api/v1/collections", json={"name": "docs"})
        assert created.status_code == 200, created.text
        document = {"id": "d1", "text": "a rocket flew to the moon", "payload": {"n": 1}}
        written = http.post("/api/v1/collections/docs/upsert", json={"documents": [document]})
        assert written.status_code == 200, written.text
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--no-color", "--config-file", str(HERE / "schemathesis.toml")),
        *("run", f"{both.url}/openapi.json", "--max-examples", str(MAX_EXAMPLES)),
    ]
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    # In a scratch folder: schemathesis keeps its example database in the working folder.
    run = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    assert "Tested: 48" in report, report[-5_000:]  # every route of the document
