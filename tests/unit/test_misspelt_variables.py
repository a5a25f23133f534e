"""An ``EMBEDSERVE_*`` variable that is close to a setting's name but names none is named
in a warning at start, with the setting it may mean: a misspelt name left its setting at
the default silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from embedserve.client.cli_connect import CLIENT_VARIABLES
from embedserve.server.config import misspelt_variables


def test_each_unknown_variable_is_named_with_the_setting_it_may_mean() -> None:
    env = {
        "EMBEDSERVE_MAX_BATCH_TOKEN": "4096",
        "EMBEDSERVE_QDRANT_URLL": "http://q:6333",
        "EMBEDSERVE_VENV": ".venv",  # far from any setting: a script's own
        "EMBEDSERVE_MAX_BATCH_TOKENS": "4096",  # settings and the client verbs' variables
        "EMBEDSERVE_API_KEYS": "k read",
        "EMBEDSERVE_TARGET": "host:50051",
        "EMBEDSERVE_TLS_SERVER_NAME": "embed.example.com",
        "OTHER_MAX_BATCH_TOKEN": "1",
        "EMBEDSERVE_model": "minilm",  # names are upper case
        "embedserve_port": "50051",
    }
    assert misspelt_variables(env, CLIENT_VARIABLES) == [
        "EMBEDSERVE_MAX_BATCH_TOKEN is not a setting, so it is ignored: "
        "did you mean EMBEDSERVE_MAX_BATCH_TOKENS?",
        "EMBEDSERVE_QDRANT_URLL is not a setting, so it is ignored: "
        "did you mean EMBEDSERVE_QDRANT_URL?",
        "EMBEDSERVE_model is not a setting, so it is ignored: did you mean EMBEDSERVE_MODEL?",
        "embedserve_port is not a setting, so it is ignored: did you mean EMBEDSERVE_PORT?",
    ]


def test_a_client_variable_is_named_where_the_setting_it_is_close_to_is_unset() -> None:
    """EMBEDSERVE_API_KEY is the client commands' key: set on a server meant to read
    EMBEDSERVE_API_KEYS, it left auth off with no word of warning."""
    assert misspelt_variables({"EMBEDSERVE_API_KEY": "k"}, CLIENT_VARIABLES) == [
        "EMBEDSERVE_API_KEY is read by the client commands, not by serve: "
        "did you mean EMBEDSERVE_API_KEYS?"
    ]
    both = {"EMBEDSERVE_API_KEY": "k", "EMBEDSERVE_API_KEYS": "k read"}
    assert misspelt_variables(both, CLIENT_VARIABLES) == []
    blank = {"EMBEDSERVE_API_KEY": "k", "EMBEDSERVE_API_KEYS": " "}  # blank is unset
    assert len(misspelt_variables(blank, CLIENT_VARIABLES)) == 1


def test_serve_logs_the_warning(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"  # the start then fails at once, after the warning
    argv = ["serve", "--model", str(missing), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [sys.executable, "-m", "embedserve.server.cli", *argv, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "EMBEDSERVE_GRACE_PERIOD": "5"},
    )
    assert done.returncode == 2, done.stderr
    assert (
        "EMBEDSERVE_GRACE_PERIOD is not a setting, so it is ignored: "
        "did you mean EMBEDSERVE_GRACE_PERIOD_S?"
    ) in done.stderr
