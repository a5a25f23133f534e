"""The core (batcher, embedder, ingestion, converters) and the settings built from their
sections load without torch or transformers."""

from __future__ import annotations

import json
import subprocess
import sys

CORE_MODULES = [
    "embedserve.server.batcher",
    "embedserve.server.embedder",
    "embedserve.server.ingestion",
    "embedserve.server.convert",
    "embedserve.server.vector_convert",
    "embedserve.server.windows",
    "embedserve.server.config",
]


def test_core_modules_do_not_import_torch() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=None
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
