#!/usr/bin/env bash
# Every GPU check in one go, for a machine lent for a few minutes (about 6 minutes on
# an H200, compiling included): bench/gpu.py with the server's batch budget (and a
# profile of one pass per path), then the compiled path's budget four times larger.
#
#   bench/gpu_checks.sh TOKENIZER_FOLDER OUT_FOLDER [bench/gpu.py arguments, e.g. --tiny]
#
# TOKENIZER_FOLDER holds MiniLM's tokenizer files (see bench/gpu.py --tokenizer); the
# JSON, markdown sections, profile and logs land in OUT_FOLDER.
set -euo pipefail
mkdir -p "${2:?output folder}"
tokenizer=$(realpath "${1:?tokenizer folder}")
out=$(realpath "$2")
shift 2
cd "$(dirname "$0")/.."
extra=("$@")
export PYTHONPATH=server:connectors:clients/python PYTHONUNBUFFERED=1

run() {  # name, seconds allowed, then bench/gpu.py's arguments
    local name=$1 seconds=$2
    shift 2
    timeout "$seconds" python3 bench/gpu.py --tokenizer "$tokenizer" --json "$out/$name.json" \
        --markdown "$out/$name.md" "$@" "${extra[@]}" 2>&1 |
        grep -v "^round\|Writing model" | tee "$out/$name.log" ||
        echo "$name ended with status $? (rounds finished before it are in $name.json)"
}

# 470 s at most in all: a device command may run 8 minutes.
run gpu 270 --compile --rounds 5 --time-budget 150 --profile "$out/profile.txt"
run gpu-65536 200 --compile --rounds 3 --time-budget 90 --batch-tokens 65536
