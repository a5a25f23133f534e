"""The deployment files name the server's real settings and services: a misspelt variable,
a retried method of a service that does not exist, or a layout the bundled cluster cannot
hold passed every schema check (scripts/check_deploy.sh validates the files' shapes)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from embedserve.client.cli_connect import CLIENT_VARIABLES
from embedserve.server.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_FILES = [
    *(ROOT / "docker").glob("Dockerfile*"),
    ROOT / "docker" / "compose.yaml",
    *(ROOT / "deploy" / "helm").rglob("*.yaml"),
    *(ROOT / "deploy" / "helm").rglob("*.tpl"),
]
VARIABLE = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]*[A-Z0-9]\b")


def test_every_variable_the_deployment_files_set_is_read() -> None:
    known = {f.name.upper() for f in dataclasses.fields(Settings)} | set(CLIENT_VARIABLES)
    named = {
        (path.relative_to(ROOT).as_posix(), variable)
        for path in DEPLOY_FILES
        for variable in VARIABLE.findall(path.read_text("utf-8"))
    }
    assert len({variable for _, variable in named}) >= 10  # the scan found the files' names
    unknown = sorted((path, v) for path, v in named if v.removeprefix(ENV_PREFIX) not in known)
    assert unknown == []


def test_the_images_listen_beyond_the_container() -> None:
    for dockerfile in (ROOT / "docker").glob("Dockerfile*"):
        host = re.search(r"\bEMBEDSERVE_HOST=(\S+)", dockerfile.read_text("utf-8"))
        assert host is not None and host.group(1) in ("0.0.0.0", "::"), dockerfile.name


def test_envoy_retries_methods_the_proto_defines() -> None:
    """A retry regex naming another package or service retried nothing, and still passed
    Envoy's own checks."""
    envoy = (ROOT / "docker" / "envoy.yaml").read_text("utf-8")
    [regex] = re.findall(r'regex: "([^"]+)"', envoy)
    rpcs: dict[str, set[str]] = {}
    packages = set()
    for proto in (ROOT / "proto").rglob("*.proto"):
        text = proto.read_text("utf-8")
        packages |= set(re.findall(r"^package ([\w.]+);", text, re.M))
        for service, body in re.findall(r"^service (\w+) \{(.*?)^\}", text, re.M | re.S):
            rpcs[service] = set(re.findall(r"^\s*rpc (\w+)\(", body, re.M))
    package = re.match(r"/([\w\\.]+)\\\.\(", regex)
    assert package is not None and package.group(1).replace("\\", "") in packages, regex
    retried = re.findall(r"(\w+)/\(([\w|]+)\)", regex)
    assert retried, regex
    for service, methods in retried:
        assert service in rpcs, f"Envoy retries calls of {service}, which no proto defines"
        assert set(methods.split("|")) <= rpcs[service], (service, methods)


def _seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def test_the_compose_layout_fits_its_cluster_and_its_drain_fits_the_stop() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text("utf-8"))
    services = compose["services"]
    nodes = [name for name in services if name.startswith("qdrant-")]
    replicas = [s for name, s in services.items() if name.startswith("embedserve-")]
    assert nodes and replicas
    for replica in replicas:
        env = replica["environment"]
        assert int(env["EMBEDSERVE_DEFAULT_REPLICATION_FACTOR"]) <= len(nodes)
        assert int(env["EMBEDSERVE_DEFAULT_WRITE_CONSISTENCY_FACTOR"]) <= int(
            env["EMBEDSERVE_DEFAULT_REPLICATION_FACTOR"]
        )
        drain = float(env.get("EMBEDSERVE_GRACE_PERIOD_S", Settings().grace_period_s))
        assert _seconds(replica["stop_grace_period"]) > drain
