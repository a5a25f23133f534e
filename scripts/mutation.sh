#!/usr/bin/env bash
# Mutation testing of the core (batcher, tokenization, embedder, ingestion, converters)
# against the fast core tests, with mutmut; results in docs/mutation.md. Not part of CI:
# it runs every mutant through tests/core, which takes a while on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${EMBEDSERVE_VENV:-.venv}/bin/python
"$PY" -m pip install --quiet "mutmut==3.8.1"
rm -rf mutants
HF_HUB_OFFLINE=1 "$PY" -m mutmut run "$@" || true
"$PY" -m mutmut results --all true > mutants/results.txt || true
"$PY" scripts/mutation_report.py mutants/results.txt docs/mutation.md
