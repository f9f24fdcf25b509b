"""deploy/: the image definition, the Kubernetes manifests and the Redis settings, checked
offline: against the Kubernetes schemas (kubernetes-validate ships them), against our own
schema of the RayCluster fields we use, and against the code (the flags of `omnistock serve`
and `omnistock gateway`, `ray start`'s options, the plan of `omnistock size`). The Redis
settings are loaded by the real server binary omnistock embeds."""

from __future__ import annotations

import argparse
import copy
import re
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import redis
import yaml
from ray.scripts.scripts import start as ray_start

from omnistock.cli.app import build_parser
from omnistock.gateway.runtime.embedded_redis import choose_server, free_port
from omnistock.loadtest.sizing import Demand, plan, plan_cluster

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.37.0"
"""The schemas the manifests are held to (strict: an unknown field is an error)."""
WORKED_EXAMPLE = Demand(orders_per_hour=20000)
"""docs/sizing.md's retailer; the manifests' replicas are its plan on 8-core nodes."""
NODE_CORES = 8

Manifest = dict[str, Any]


def manifests() -> list[tuple[str, Manifest]]:
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


def of_kind(kind: str) -> list[Manifest]:
    return [m for _, m in manifests() if m["kind"] == kind]


def the(kind: str) -> Manifest:
    (found,) = of_kind(kind)
    return found


def pod_templates() -> Iterator[tuple[str, Manifest]]:
    """(where, pod template) of every workload: the Deployment and the RayCluster's groups."""
    for deployment in of_kind("Deployment"):
        yield deployment["metadata"]["name"], deployment["spec"]["template"]
    for cluster in of_kind("RayCluster"):
        yield "head", cluster["spec"]["headGroupSpec"]["template"]
        for group in cluster["spec"]["workerGroupSpecs"]:
            yield group["groupName"], group["template"]


def containers() -> Iterator[tuple[str, Manifest]]:
    for where, template in pod_templates():
        spec = template["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            yield f"{where}/{container['name']}", container


def omnistock_containers() -> Iterator[tuple[str, Manifest, argparse.Namespace]]:
    """Containers that run omnistock, each with its arguments as `omnistock` parses them."""
    parser = build_parser()
    for where, container in containers():
        if "command" in container or not container.get("args"):
            continue  # ray's own processes, or the image's default
        args = [re.sub(r"\$\((\w+)\)", r"\1-from-the-secret", arg) for arg in container["args"]]
        yield where, container, parser.parse_args(args)


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_every_manifest_parses_and_the_kustomization_lists_them_all() -> None:
    found = manifests()
    assert {m["kind"] for _, m in found} >= {
        "Namespace",
        "RayCluster",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Kustomization",
    }
    kustomization = the("Kustomization")
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    for _, manifest in found:
        if manifest["kind"] not in ("Kustomization", "Namespace"):
            assert manifest["metadata"]["namespace"] == kustomization["namespace"]


CORE_GROUPS = ("v1", "apps/", "policy/", "networking.k8s.io/")


def test_core_objects_validate_against_the_kubernetes_schemas() -> None:
    checked = 0
    for name, manifest in manifests():
        if manifest["apiVersion"].startswith(CORE_GROUPS):
            try:
                kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{name}: {manifest['kind']} {error.message} at {list(error.path)}")
            checked += 1
    assert checked >= 6


def test_the_kubernetes_schemas_do_catch_a_mistake() -> None:
    deployment = copy.deepcopy(the("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["prot"] = 50051
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(the("Deployment"))
    deployment["spec"]["replicas"] = "nine"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


POD_TEMPLATE = {"type": "object", "required": ["spec"]}
"""Checked in full against Kubernetes' PodTemplateSpec below."""
RAY_START_PARAMS = {"type": "object", "additionalProperties": {"type": "string"}}
RAYCLUSTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
        },
        "spec": {
            "type": "object",
            "required": ["headGroupSpec", "workerGroupSpecs"],
            "additionalProperties": False,
            "properties": {
                "rayVersion": {"type": "string"},
                "headGroupSpec": {
                    "type": "object",
                    "required": ["rayStartParams", "template"],
                    "additionalProperties": False,
                    "properties": {"rayStartParams": RAY_START_PARAMS, "template": POD_TEMPLATE},
                },
                "workerGroupSpecs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": [
                            "groupName",
                            "replicas",
                            "minReplicas",
                            "maxReplicas",
                            "rayStartParams",
                            "template",
                        ],
                        "additionalProperties": False,
                        "properties": {
                            "groupName": {"type": "string", "minLength": 1},
                            "replicas": {"type": "integer", "minimum": 0},
                            "minReplicas": {"type": "integer", "minimum": 0},
                            "maxReplicas": {"type": "integer", "minimum": 1},
                            "rayStartParams": RAY_START_PARAMS,
                            "template": POD_TEMPLATE,
                        },
                    },
                },
            },
        },
    },
}
"""The RayCluster (KubeRay's ray.io/v1) fields these manifests use, written here rather than
KubeRay's CRD copied in; anything else in spec is refused, so a new field gets checked here."""


def test_the_raycluster_has_the_fields_we_use_and_valid_pods() -> None:
    cluster = the("RayCluster")
    jsonschema.validate(cluster, RAYCLUSTER_SCHEMA)
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    # Each group's pod template is a Kubernetes PodTemplateSpec.
    for where, template in pod_templates():
        wrapped = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": where},
            "template": template,
        }
        kubernetes_validate.validate(wrapped, KUBERNETES_VERSION, strict=True)
    # Ray runs in a group's first container.
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert head[0]["name"] == "ray-head"
    # And the schema refuses what KubeRay would not take.
    wrong = copy.deepcopy(cluster)
    wrong["spec"]["workerGroupSpecs"][0]["replica"] = wrong["spec"]["workerGroupSpecs"][0].pop("replicas")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, RAYCLUSTER_SCHEMA)
    wrong = copy.deepcopy(cluster)
    wrong["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, RAYCLUSTER_SCHEMA)


def test_every_flag_is_one_the_commands_have() -> None:
    ran = {args.command for _, _, args in omnistock_containers()}
    assert ran == {"serve", "gateway"}
    ray_options = {name for param in ray_start.params for name in param.opts}
    for where, container in containers():
        if container.get("command") == ["ray"]:
            assert container["args"][0] == "start", where
            flags = {arg for arg in container["args"][1:] if arg.startswith("-")}
            assert flags <= ray_options, where
    for group in [the("RayCluster")["spec"]["headGroupSpec"], *the("RayCluster")["spec"]["workerGroupSpecs"]]:
        assert {f"--{name}" for name in group["rayStartParams"]} <= ray_options


def test_a_flag_omnistock_does_not_have_is_caught() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["gateway", "--ray-adress", "auto"])


def test_probes_and_scrape_annotations_name_the_ports_omnistock_listens_on() -> None:
    for where, template in pod_templates():
        annotations = template.get("metadata", {}).get("annotations", {})
        scraped = annotations.get("prometheus.io/scrape") == "true"
        for container in template["spec"]["containers"]:
            ports = {port["containerPort"] for port in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    assert container[probe]["grpc"]["port"] in ports, f"{where} {probe}"
            if container.get("args") and "command" not in container:
                args = container["args"]
                port = int(option(args, "--port"))
                assert port in ports
                assert container["readinessProbe"]["grpc"]["port"] == port
                assert container["livenessProbe"]["grpc"]["port"] == port
                # The kubelet speaks TLS to a port that serves TLS only.
                assert container["readinessProbe"]["grpc"]["mode"] == "TLS"
                assert "--tls-cert" in args and option(args, "--auth") == "keys"
                assert scraped, where
                assert int(annotations["prometheus.io/port"]) == int(option(args, "--metrics-port"))
                assert int(annotations["prometheus.io/port"]) in ports
                assert annotations["prometheus.io/path"] == "/metrics"
                # Prometheus reaches /metrics only if it listens beyond loopback.
                assert option(args, "--metrics-host") == "0.0.0.0"


def test_one_image_everywhere_and_it_is_this_version() -> None:
    images = {container["image"] for _, container in containers()}
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert images == {f"omnistock:{version}"}


def test_services_and_budgets_select_the_pods() -> None:
    labels = {where: template["metadata"]["labels"] for where, template in pod_templates()}
    service = the("Service")
    gateway_labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= gateway_labels.items()
    assert the("Deployment")["spec"]["selector"]["matchLabels"].items() <= gateway_labels.items()
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    named = {
        p["name"] for c in the("Deployment")["spec"]["template"]["spec"]["containers"] for p in c["ports"]
    }
    assert grpc_port["targetPort"] in named
    # Every budget covers some pods, and no pod is left without one.
    covered: set[str] = set()
    for budget in of_kind("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"].items()
        matched = {where for where, pod in labels.items() if selector <= pod.items()}
        assert matched, budget["metadata"]["name"]
        covered |= matched
    assert covered == set(labels)


def test_replicas_are_the_plan_of_the_worked_example() -> None:
    cluster = plan_cluster(plan(WORKED_EXAMPLE), NODE_CORES)
    (group,) = the("RayCluster")["spec"]["workerGroupSpecs"]
    assert group["replicas"] == cluster.worker_replicas
    assert int(group["rayStartParams"]["num-cpus"]) >= 1  # a shard goes only where Ray has CPUs
    assert the("Deployment")["spec"]["replicas"] == cluster.gateway_replicas
    (serve,) = [args for _, _, args in omnistock_containers() if args.command == "serve"]
    assert serve.shards == cluster.shards
    assert the("RayCluster")["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_secrets_come_from_secrets_never_from_the_manifests() -> None:
    assert not of_kind("Secret")
    for where, container in containers():
        text = yaml.safe_dump(container)
        assert "redis://" not in text and "rediss://" not in text, where
        for variable in container.get("env", []):
            if "REDIS" in variable["name"]:
                assert "secretKeyRef" in variable["valueFrom"], where


DOCKERFILE = DEPLOY / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_builds_one_non_root_image_with_no_secret() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    kinds = [kind for kind, _ in instructions]
    assert "ADD" not in kinds
    users = [value for kind, value in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # Everything copied is part of the package, and exists.
    for kind, value in instructions:
        if kind == "COPY":
            *sources, _ = value.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not re.search(r"\.(pem|key|password)$|^var|\.venv|certs", source), source
        if kind in ("ENV", "ARG"):
            assert not re.search(r"(?i)password|secret|token|api_key", value), value
    assert any(kind == "RUN" and "pip install ." in value for kind, value in instructions)
    exposed = {port for kind, value in instructions if kind == "EXPOSE" for port in value.split()}
    assert exposed == {"50051", "9464"}
    (entrypoint,) = [value for kind, value in instructions if kind == "ENTRYPOINT"]
    program = yaml.safe_load(entrypoint)[0]
    assert program in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in ignored and "**/*.key" in ignored and "**/*.pem" in ignored


def redis_settings() -> list[tuple[str, str]]:
    settings = []
    for line in (DEPLOY / "redis" / "valkey.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split(None, 1)
            settings.append((name, value))
    return settings


def test_the_redis_settings_are_the_journals(tmp_path: Path) -> None:
    settings = dict(redis_settings())
    assert settings["cluster-enabled"] == "yes"
    assert (settings["appendonly"], settings["appendfsync"]) == ("yes", "always")
    assert int(settings["min-replicas-to-write"]) >= 1
    assert settings["maxmemory-policy"] == "noeviction"
    # The server omnistock embeds takes the file as it is.
    server = choose_server()
    port = free_port()
    config = tmp_path / "node.conf"
    log = tmp_path / "node.log"
    # The node's own lines, as deploy/redis/README.md says; the cluster bus gets a port of its
    # own (the default, port + 10000, is out of range for a high picked port).
    config.write_text(
        f"port {port}\ncluster-port {free_port()}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"logfile {log}\nrequirepass test-only\n" + (DEPLOY / "redis" / "valkey.conf").read_text()
    )
    process = subprocess.Popen([server.path, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = redis.Redis(port=port, password="test-only", socket_timeout=5)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    said = process.stderr.read().decode() if process.stderr else ""
                    said += log.read_text() if log.exists() else ""
                    pytest.fail(f"{server.describe()} refused deploy/redis/valkey.conf: {said}")
                time.sleep(0.1)
        for name, value in redis_settings():
            if name == "cluster-config-file":
                continue
            assert client.config_get(name)[name] == value, name
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=15)
