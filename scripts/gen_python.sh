#!/usr/bin/env bash
# Regenerates the Python stubs (and their .pyi) from proto/ into clients/python/embedserve/v1,
# or into the folder given as the first argument (used to check that committed code is current).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$PY"):$PATH"
out=${1:-clients/python}
mkdir -p "$out/embedserve/v1"
rm -f "$out"/embedserve/v1/*_pb2*.py "$out"/embedserve/v1/*_pb2*.pyi
"$PY" -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/embedserve/v1/*.proto
for f in "$out"/embedserve/v1/*_pb2*.py "$out"/embedserve/v1/*_pb2*.pyi; do
  { echo "# Generated from proto/embedserve/v1 by scripts/gen_python.sh. DO NOT EDIT."; cat "$f"; } > "$f.tmp"
  mv "$f.tmp" "$f"
done
