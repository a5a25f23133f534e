"""Python's warnings go through the server's log format: with ``--log-format json`` every
line on stderr is one JSON object (a library's UserWarning came out raw, two lines of
text in a JSON log stream)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import warnings
from embedserve.server import logs

logs.configure(logs.LogSettings(log_level="INFO", log_format="json"))
warnings.warn("Api key is used with an insecure connection.", UserWarning)
"""


def test_a_warning_is_one_json_log_line() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line: no raw text
    [record] = records
    assert record["level"] == "WARNING"
    assert "Api key is used with an insecure connection." in record["message"]
