#!/usr/bin/env bash
# Checks and tests the Go, Java and Python clients against one live server:
#   buf lint; buf breaking against main (when main has proto files); generated Go
#   code current; gofmt, go vet, go test and the Go example (clients/go); mvn verify
#   (clients/java); `pip install ./clients/python` into a fresh virtualenv (no torch
#   allowed there) and clients/python/tests/scenario.py with it.
# Needs go, java 17+, mvn and the repository's .venv (./dev test creates it); installs
# the pinned buf and protoc plugins (scripts/gen_all.sh --tools); Maven fetches its own,
# pip its packages (from its cache after the first run).
#
#   scripts/test_clients.sh
#   EMBEDSERVE_TEST_TARGET=host:port scripts/test_clients.sh   use a running server
#   MVN_FLAGS="-Dmaven.repo.local=/tmp/m2" scripts/test_clients.sh   extra mvn flags
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Every server started here or by the Go and Java tests speaks gRPC only: several run at
# once, and none may take the HTTP port another one holds.
export EMBEDSERVE_HTTP_PORT=${EMBEDSERVE_HTTP_PORT:-0}
PY=${EMBEDSERVE_PYTHON:-$ROOT/.venv/bin/python}
BIN=${EMBEDSERVE_BIN:-$ROOT/.venv/bin/embedserve}
started=$SECONDS
current="setup"
server_pid=""
pip_pid=""
workdir=$(mktemp -d)

step() {
  current=$1
  printf '\n==> [%3ds] %s\n' $((SECONDS - started)) "$1"
}

finish() {
  local rc=$?
  if [ -n "$pip_pid" ] && kill -0 "$pip_pid" 2>/dev/null; then
    kill -TERM -- "-$pip_pid" 2>/dev/null || kill -TERM "$pip_pid" 2>/dev/null || true
    wait "$pip_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
  if [ "$rc" = 0 ]; then
    echo
    echo "test_clients: OK - buf lint, breaking check, generated Go current, Go, Java and Python client tests passed ($((SECONDS - started)) s)"
  else
    echo
    echo "test_clients: FAILED during '$current' (exit $rc, after $((SECONDS - started)) s)" >&2
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

step "prerequisites"
missing=()
for tool in go java mvn; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -x "$PY" ] || missing+=("$PY (run ./dev test once)")
if [ -z "${EMBEDSERVE_TEST_TARGET:-}" ] && [ ! -x "$BIN" ]; then missing+=("$BIN (run ./dev test once)"); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  exit 1
fi
echo "$(go version); $(java -version 2>&1 | head -1); $(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g')"

# The server warms up while the tools install and the linters run.
if [ -z "${EMBEDSERVE_TEST_TARGET:-}" ]; then
  step "starting embedserve serve --model minilm --reranker (a tiny random cross-encoder)"
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  HF_HUB_OFFLINE=1 "$PY" tests/tiny_reranker.py "$workdir/reranker" >/dev/null
  HF_HUB_OFFLINE=1 "$BIN" serve --model minilm --reranker "$workdir/reranker" \
    --host 127.0.0.1 --port "$port" \
    --data-dir "$workdir/data" --grace-period-s 2 >"$workdir/server.log" 2>&1 &
  server_pid=$!
  export EMBEDSERVE_TEST_TARGET=127.0.0.1:$port
  # The clients' Rerank tests require the reranker where this is set, and skip elsewhere.
  export EMBEDSERVE_TEST_RERANKER=1
  echo "server pid $server_pid on $EMBEDSERVE_TEST_TARGET (log: $workdir/server.log)"
fi

# The Python client's fresh virtualenv installs meanwhile too: only pip's own view of
# ./clients/python, so a dependency missing from its pyproject.toml fails the scenario.
step "Python client: pip install ./clients/python into a fresh virtualenv (background)"
client_venv=$workdir/client-venv
"$PY" -m venv --without-pip "$client_venv"
own_group=()
if command -v setsid >/dev/null; then own_group=(setsid); fi # so that finish can stop pip's children too
${own_group[@]+"${own_group[@]}"} "$PY" -m pip --python "$client_venv/bin/python" install --quiet \
  --disable-pip-version-check ./clients/python >"$workdir/pip.log" 2>&1 &
pip_pid=$!
echo "pip pid $pip_pid (log: $workdir/pip.log)"

step "tools (buf, protoc-gen-go, protoc-gen-go-grpc)"
PATH="$(scripts/gen_all.sh --tools):$PATH"
export PATH
buf --version

step "buf lint"
buf lint

step "buf breaking against main"
if ! command -v git >/dev/null || ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "skipped: not a git checkout"
elif ! git rev-parse --verify -q refs/heads/main >/dev/null; then
  echo "skipped: no main branch"
elif ! git ls-tree -r --name-only main -- proto | grep -q '\.proto$'; then
  echo "skipped: main has no proto files yet (first commit): nothing to compare"
else
  buf breaking proto --against '.git#branch=main,subdir=proto'
  echo "no breaking changes against main"
fi

step "generated Go code is current"
scripts/gen_all.sh --check go

if [ -n "$server_pid" ]; then
  step "waiting for the server to be SERVING"
  "$PY" - "$EMBEDSERVE_TEST_TARGET" "$server_pid" <<'EOF' || { cat "$workdir/server.log" >&2; exit 1; }
import os, sys, time
from embedserve.client import EmbedClient
target, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 180
with EmbedClient(target) as client:
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("server exited before serving")
        try:
            if client.health() == "SERVING":
                break
        except Exception:
            pass
        if time.monotonic() > deadline:
            sys.exit("server not SERVING after 180 s")
        time.sleep(0.2)
EOF
  echo "SERVING"
fi

step "Go client: gofmt, go vet, go test, example"
(
  cd clients/go
  unformatted=$(gofmt -l .)
  if [ -n "$unformatted" ]; then
    echo "not gofmt-formatted: $unformatted" >&2
    exit 1
  fi
  go vet ./...
  go test -count=1 ./...
  go run ./examples/embed -target "$EMBEDSERVE_TEST_TARGET" "hello from the Go example"
)

step "Python client alone (embedserve-client, no torch): scenario"
"$PY" - <<'EOF'
import sys, tomllib
client = tomllib.load(open("clients/python/pyproject.toml", "rb"))["project"]["dependencies"]
root = set(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"])
if stray := [d for d in client if d not in root]:
    sys.exit(f"clients/python/pyproject.toml: {stray} differ from the root pyproject.toml")
print("dependencies as in the root pyproject.toml:", ", ".join(client))
EOF
if ! wait "$pip_pid"; then
  pip_pid=""
  cat "$workdir/pip.log" >&2
  echo "pip install ./clients/python failed" >&2
  exit 1
fi
pip_pid=""
"$client_venv/bin/python" - <<'EOF'
import importlib.metadata, importlib.util, sys
try:
    importlib.metadata.distribution("torch")
    sys.exit("torch is installed in the client-only virtualenv")
except importlib.metadata.PackageNotFoundError:
    pass
if importlib.util.find_spec("torch") is not None:
    sys.exit("torch is importable in the client-only virtualenv")
names = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions())
print("installed:", ", ".join(names))
EOF
"$client_venv/bin/python" clients/python/tests/scenario.py "$EMBEDSERVE_TEST_TARGET"

step "Java client: mvn verify"
(
  cd clients/java
  # MVN_FLAGS is a list of flags; sed drops the colour resets Maven 3.8 prints even with -B.
  # shellcheck disable=SC2086
  mvn -q -B ${MVN_FLAGS:-} verify 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g'
)
current="done"
