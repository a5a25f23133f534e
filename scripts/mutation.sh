#!/usr/bin/env bash
# Mutation testing of the core (batcher, tokenization, embedder, ingestion, converters)
# against the fast core tests, with mutmut; results in docs/mutation.md. Not part of CI:
# it runs every mutant through tests/core, about 22 minutes on two shared cores.
# Arguments go to `mutmut run` (e.g. --max-children 2, or mutant name globs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${EMBEDSERVE_VENV:-.venv}/bin/python
"$PY" -m pip install --quiet "mutmut==3.8.1"
rm -rf mutants
started=$SECONDS
# scripts/mutmut_cli.py is mutmut with mutant names that match the import names (see there).
HF_HUB_OFFLINE=1 "$PY" scripts/mutmut_cli.py run "$@" || true
"$PY" scripts/mutmut_cli.py results --all true > mutants/results.txt || true
"$PY" scripts/mutation_report.py mutants/results.txt docs/mutation.md \
  --command "scripts/mutation.sh $*" --seconds $((SECONDS - started))
