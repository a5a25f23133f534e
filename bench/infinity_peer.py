"""Infinity as a benchmark peer: its own virtualenv, its model folder per engine, its server.

Infinity pins older transformers and numpy than embedserve, so it lives in a
virtualenv under the cache folder, created on first use from PyPI; each engine
installs its own extra of ``infinity-emb`` there once. Its ``optimum`` engine
(ONNX Runtime) needs an ONNX file in the model folder and cannot make one from
a local folder, so the model is exported once, offline, with the virtualenv's
``optimum-cli`` into the cache, and Infinity runs from that folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

INFINITY_VERSION = "0.0.78"

# What each engine needs in the virtualenv. The optimum engine's pin: optimum 1.x's
# exporter, which `optimum.onnxruntime` imports, needs a torch.onnx internal that torch 2.9
# removed, so Infinity cannot even load its ONNX classes beside a current torch; optimum
# 2.1 with optimum-onnx 0.1.0 (the same classes, moved) skips it on torch >= 2.9.
ENGINE_REQUIREMENTS = {
    "torch": [f"infinity-emb[server,torch]=={INFINITY_VERSION}"],
    "torch-bf16": [f"infinity-emb[server,torch]=={INFINITY_VERSION}"],
    "torch-bf16-compile": [f"infinity-emb[server,torch]=={INFINITY_VERSION}"],
    "optimum": [
        f"infinity-emb[server,optimum]=={INFINITY_VERSION}",
        "optimum-onnx[onnxruntime]==0.1.0",
    ],
}

REPORTED_PACKAGES = ["torch", "transformers", "sentence-transformers", "optimum", "onnxruntime"]

# Infinity's optimum engine pools by the first token unless told otherwise, whatever the
# model's 1_Pooling/config.json says (its torch engine reads that file). Its own graph
# optimisation fails with optimum-onnx 0.1.0 (OptimizationConfig no longer takes
# `optimize_with_onnxruntime_only`) and falls back to the exported graph, so it is skipped;
# ONNX Runtime still applies its session-level graph optimisations when it loads the file.
ENGINE_FLAGS = {
    "optimum": ["--pooling-method", "mean", "--onnx-disable-optimize"],
    "torch-bf16": ["--dtype", "bfloat16"],
    "torch-bf16-compile": ["--dtype", "bfloat16", "--compile"],
}
# Engine names of ours that are another engine of Infinity's with flags.
INFINITY_ENGINE = {"torch-bf16": "torch", "torch-bf16-compile": "torch"}

EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception): ")


@dataclass(frozen=True)
class ModelLocation:
    """How Infinity's process is pointed at the model: its ``--model-id``, where it runs."""

    model_id: str
    cwd: Path | None = None


class SetupError(RuntimeError):
    """An engine could not be installed or prepared; the message names the step and why."""


def failure_line(log_file: Path) -> str:
    """What a failed step's log says went wrong: its last exception line, else its last line."""
    try:
        lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines()]
    except OSError:
        return "no output"
    lines = [line for line in lines if line]
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
    return (exceptions or lines or ["no output"])[-1]


def run_step(step: str, command: list[str], log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    if code:
        raise SetupError(f"{step} failed (exit {code}): {failure_line(log_file)} (log: {log_file})")


def infinity_python(cache_dir: Path, engine: str, log: Callable[[str], None]) -> Path:
    """The Infinity virtualenv's interpreter, with ``engine``'s requirements installed."""
    requirements = ENGINE_REQUIREMENTS[engine]
    venv = cache_dir / f"infinity-{INFINITY_VERSION}"
    python = venv / "bin" / "python"
    stamp = venv / f".installed-{engine}"
    if stamp.exists() and stamp.read_text() == " ".join(requirements):
        return python
    log(f"installing {' '.join(requirements)} into {venv} (once)")
    started = time.perf_counter()
    if not python.exists():
        command = [sys.executable, "-m", "venv", str(venv)]
        run_step("creating Infinity's virtualenv", command, cache_dir / "infinity-venv.log")
    command = [str(python), "-m", "pip", "install", *requirements]
    run_step(f"installing Infinity's {engine} engine", command, venv / f"install-{engine}.log")
    stamp.write_text(" ".join(requirements))
    log(f"installed Infinity's {engine} engine in {time.perf_counter() - started:.0f} s")
    return python


def onnx_model_folder(
    python: Path, model_path: str, cache_dir: Path, log: Callable[[str], None]
) -> Path:
    """A copy of the model folder with ``model.onnx`` in it, exported once from local files."""
    key = hashlib.sha256(str(Path(model_path).resolve()).encode()).hexdigest()[:12]
    folder = cache_dir / "onnx" / f"{Path(model_path).name}-{key}"
    if (folder / "model.onnx").exists():
        return folder
    log(f"exporting {model_path} to ONNX in {folder} (once)")
    started = time.perf_counter()
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        str(python.parent / "optimum-cli"),
        "export",
        "onnx",
        "--model",
        model_path,
        "--task",
        "feature-extraction",
        # The plain encoder (last_hidden_state), as Infinity pools the tokens itself; a
        # sentence-transformers export would end in the pooled vector instead.
        "--library-name",
        "transformers",
        str(partial),
    ]
    run_step("exporting the model to ONNX", command, cache_dir / "onnx" / f"{folder.name}.log")
    cut_at_max_seq_length(partial, Path(model_path))
    partial.rename(folder)
    log(f"exported the model to ONNX in {time.perf_counter() - started:.0f} s")
    return folder


def cut_at_max_seq_length(onnx_folder: Path, model_path: Path) -> None:
    """Make Infinity's optimum engine cut inputs where sentence-transformers does.

    It truncates at the config's ``max_position_embeddings`` (512 for MiniLM), where the
    model's sentence_bert_config.json says 256; the exported graph does not read the
    config, so lowering it there changes only where the tokenizer cuts.
    """
    try:
        st_config = json.loads((model_path / "sentence_bert_config.json").read_text())
    except FileNotFoundError:
        return
    config_file = onnx_folder / "config.json"
    config = json.loads(config_file.read_text())
    config["max_position_embeddings"] = st_config["max_seq_length"]
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def model_for(
    engine: str, python: Path, model_path: str, cache_dir: Path, log: Callable[[str], None]
) -> ModelLocation:
    """Where Infinity's ``engine`` loads the model from."""
    if engine != "optimum":
        return ModelLocation(model_path)
    folder = onnx_model_folder(python, model_path, cache_dir, log)
    # Infinity 0.0.78 names the ONNX file by its path under the model id, and optimum-onnx
    # looks that name up among bare file names: only "." from inside the folder matches.
    return ModelLocation(".", cwd=folder)


def installed_versions(python: Path) -> dict[str, str]:
    """Versions of the packages that decide Infinity's speed, as installed in its virtualenv."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(found))\n"
    )
    out = subprocess.run(
        [str(python), "-c", script, *REPORTED_PACKAGES], capture_output=True, text=True, check=True
    )
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


class InfinityServer:
    def __init__(self, python: Path, model: ModelLocation, engine: str, port: int) -> None:
        self.port = port
        self.name = "bench-model"
        command = [
            str(python.parent / "infinity_emb"),
            "v2",
            "--model-id",
            model.model_id,
            "--served-model-name",
            self.name,
            "--engine",
            INFINITY_ENGINE.get(engine, engine),
            *ENGINE_FLAGS.get(engine, []),
            "--device",
            "cpu",
            "--batch-size",
            "64",
            "--port",
            str(port),
            "--no-model-warmup",
        ]
        env = dict(os.environ, HF_HUB_OFFLINE="1", INFINITY_ANONYMOUS_USAGE_STATS="0")
        self.log_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"infinity-{engine}.log"
        self._log = self.log_file.open("w")
        self._proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=model.cwd
        )

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"Infinity exited with code {self._proc.returncode}: "
                    f"{failure_line(self.log_file)} (log: {self.log_file})"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(1.0)
        raise TimeoutError(
            f"Infinity did not become healthy in {timeout:.0f} s (log: {self.log_file})"
        )

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
