"""The three clients retry the same calls when balanced: one service config, written in
each client's language (a call missing from one would fail there when a server dies)."""

from __future__ import annotations

import re
from pathlib import Path

from embedserve.client._balancing import IDEMPOTENT_METHODS

ROOT = Path(__file__).resolve().parents[2]


def test_go_and_java_retry_the_calls_python_retries() -> None:
    python = {(s, m) for s, methods in IDEMPOTENT_METHODS.items() for m in methods}
    go_source = (ROOT / "clients/go/embedserve/balancing.go").read_text()
    go = set(re.findall(r'"service": "([\w.]+)", "method": "(\w+)"', go_source))
    java_source = ROOT / "clients/java/src/main/java/dev/embedserve/client/Balancing.java"
    java = set(re.findall(r'\{"([\w.]+)", "(\w+)"\}', java_source.read_text()))
    assert python == go == java
    # Reads that may run twice, SearchBatch, Facet and ListAliases among them.
    vector_reads = {m for s, m in python if s.endswith("VectorService")}
    assert {"Search", "SearchBatch", "Facet", "ListAliases", "Scroll"} <= vector_reads
    assert not vector_reads & {"Upsert", "Delete", "Cluster", "IngestStream"}
