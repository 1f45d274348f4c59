"""Static checks of docker-compose.yml, deploy/Dockerfile and deploy/k8s (no Docker engine here).

What can rot without anyone noticing: a service command naming a CLI verb or option that was
renamed, a new Celery queue that no worker consumes, a second scheduler, a literal secret, a
root container. Commands are parsed with the real CLI parser, queues come from the real app.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in dev deps

from teledispatch.cli.main import parse
from teledispatch.simulator.server import build_parser as simulator_parser
from teledispatch.worker.app import QUEUES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
SECRET_WORDS = ("PASSWORD", "SECRET", "AUTH", "API_KEYS", "TOKEN")
_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` as the default, anything else as a placeholder."""
    return _VAR.sub(lambda m: m.group(3) if m.group(2) == "-" else "x", text)


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """Parse as ``teledispatch`` would; argparse's exit becomes a test failure with its text."""
    argv = [interpolate(a) for a in argv]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            if argv[:1] == ["simulate"]:
                ns = simulator_parser().parse_args(argv[1:])
                ns.verb = "simulate"
                return ns
            return parse(argv)
    except SystemExit:
        pytest.fail(f"not a valid teledispatch command line: {argv}\n{err.getvalue()}")


def consumed_queues(commands: list[argparse.Namespace]) -> set[str]:
    queues: set[str] = set()
    for ns in commands:
        if ns.verb == "worker":
            queues |= set(QUEUES) if not ns.queues else set(ns.queues.split(","))
    return queues


def schedulers(commands: list[tuple[argparse.Namespace, int]]) -> int:
    return sum(n for ns, n in commands if ns.verb == "beat" or getattr(ns, "beat", False))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if "build" in svc or str(svc.get("image", "")).startswith("teledispatch")
    }


def test_compose_has_every_role(compose: dict[str, Any]) -> None:
    assert {"redis", "postgres", "migrate", "worker", "beat", "flower", "api", "simulator"} <= set(
        compose["services"]
    )


def test_compose_commands_are_real_cli_verbs(compose: dict[str, Any]) -> None:
    apps = app_services(compose)
    assert len(apps) >= 6
    verbs = {}
    for name, svc in apps.items():
        assert "entrypoint" not in svc, f"{name}: the image's entrypoint is teledispatch"
        verbs[name] = parse_cli(list(svc["command"])).verb
    assert verbs["migrate"] == "db" and parse_cli(apps["migrate"]["command"]).db_verb == "upgrade"
    assert verbs["worker"] == "worker" and verbs["beat"] == "beat"
    assert verbs["flower"] == "flower" and verbs["api"] == "api"
    assert verbs["simulator"] == "simulate"


def test_compose_every_queue_has_a_consumer_and_one_scheduler(compose: dict[str, Any]) -> None:
    parsed = [
        (parse_cli(list(svc["command"])), svc.get("deploy", {}).get("replicas", 1))
        for svc in app_services(compose).values()
    ]
    missing = set(QUEUES) - consumed_queues([ns for ns, _ in parsed])
    assert not missing, f"no worker consumes {sorted(missing)}"
    assert schedulers(parsed) == 1
    worker = parse_cli(compose["services"]["worker"]["command"])
    assert not worker.beat, "the scalable worker must not also run the schedule"
    assert "container_name" not in compose["services"]["worker"], "container_name blocks --scale"
    assert "ports" not in compose["services"]["worker"], "host ports block --scale"


def test_compose_redis_keeps_tasks(compose: dict[str, Any]) -> None:
    cmd = [interpolate(str(a)) for a in compose["services"]["redis"]["command"]]
    joined = " ".join(cmd)
    assert "--appendonly yes" in joined
    assert "--maxmemory-policy noeviction" in joined


def test_compose_healthchecks_and_ordering(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("redis", "postgres", "worker", "flower", "api", "simulator", "beat"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["migrate"].get("restart") == "no", "migrate is one-shot"
    for name in ("worker", "beat", "api"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def _env_items(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        yield from ((str(k), str(v)) for k, v in value.items())
    elif isinstance(value, list):
        for item in value:
            key, _, val = str(item).partition("=")
            yield key, val


def test_compose_holds_no_literal_secret(compose: dict[str, Any]) -> None:
    checked = 0
    for name, svc in compose["services"].items():
        for key, value in _env_items(svc.get("environment", {})):
            if any(w in key for w in SECRET_WORDS):
                checked += 1
                assert _VAR.fullmatch(value), f"{name}.{key} must come from the environment"
            if key == "DATABASE_URL":
                checked += 1
                password = value.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
                assert _VAR.fullmatch(password), f"{name}: DATABASE_URL password is literal"
    assert checked >= 5


def test_dockerfile_is_multistage_and_non_root() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines()]
    stages = [ln for ln in lines if ln.upper().startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage build expected"
    users = [ln.split()[1] for ln in lines if ln.upper().startswith("USER ")]
    assert users, "no USER instruction: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "run as a numeric non-root uid"
    final = lines[lines.index(stages[-1]) :]
    assert any("--from=" in ln for ln in final if ln.upper().startswith("COPY"))
    assert 'ENTRYPOINT ["teledispatch"]' in lines


def test_dockerfile_builds_the_package_layout_with_the_server_extras() -> None:
    text = DOCKERFILE.read_text()
    copied = {
        ln.split()[1] for ln in text.splitlines() if ln.startswith("COPY ") and "--" not in ln
    }
    # teledispatch/{producer,worker,simulator} are symlinks: their targets must be there too.
    assert {"teledispatch", "producer", "worker", "simulator"} <= copied
    assert "'.[server,flower]'" in text
    links = {p.name for p in (ROOT / "teledispatch").iterdir() if p.is_symlink()}
    assert links <= copied


def test_celery_app_is_named_by_its_import_name() -> None:
    texts = [COMPOSE.read_text(), *(p.read_text() for p in sorted(K8S.glob("*.yaml")))]
    apps = [m for t in texts for m in re.findall(r"celery -A (\S+)", t)]
    assert apps and set(apps) == {"teledispatch.worker.tasks"}


#: What ``kubectl apply -f DIR`` reads from a folder (with ``-R``, from its subfolders too).
KUBECTL_EXTENSIONS = (".yaml", ".yml", ".json")


def _k8s_docs(*, recursive: bool = False) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    paths = K8S.rglob("*") if recursive else K8S.glob("*")
    for path in sorted(paths):
        if path.is_file() and path.suffix in KUBECTL_EXTENSIONS:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def _component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"].get("app.kubernetes.io/component", ""))


def test_k8s_manifests() -> None:
    docs = _k8s_docs()
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    by_component = {_component(d): d for d in workloads}
    assert {"worker", "beat", "flower", "api", "migrate"} <= set(by_component)
    assert by_component["migrate"]["kind"] == "Job"

    beat = by_component["beat"]
    assert beat["kind"] == "Deployment" and beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"

    parsed: list[tuple[argparse.Namespace, int]] = []
    for doc in workloads:
        pod = _pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        selector = doc["spec"].get("selector", {}).get("matchLabels")
        if selector:
            assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
        for container in pod["containers"]:
            assert "command" not in container, "keep the image's teledispatch entrypoint"
            ns = parse_cli(list(container["args"]))
            if doc["kind"] == "Deployment":
                parsed.append((ns, int(doc["spec"].get("replicas", 1))))
            if ns.verb == "db":
                assert ns.db_verb == "upgrade"
    assert not set(QUEUES) - consumed_queues([ns for ns, _ in parsed])
    assert schedulers(parsed) == 1


def test_k8s_folder_applies_no_secret_over_the_real_one() -> None:
    """``kubectl apply -f deploy/k8s/`` (or ``-R``) must not overwrite the operator's Secret
    with placeholders; the example Secret lists the keys every workload reads."""
    for recursive in (False, True):
        kinds = [d["kind"] for d in _k8s_docs(recursive=recursive)]
        assert "Secret" not in kinds, f"a Secret in deploy/k8s (recursive={recursive})"
    (secret,) = yaml.safe_load_all((K8S / "examples" / "secret.yaml.example").read_text())
    assert secret["kind"] == "Secret"
    for key, value in secret["stringData"].items():
        assert not value or "CHANGE-ME" in value, f"Secret {key} holds a real-looking value"
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    referenced = set(re.findall(r"secretKeyRef: \{name: ([\w-]+), key: (\w+)\}", text))
    assert referenced and all(name == secret["metadata"]["name"] for name, _ in referenced)
    assert {key for _, key in referenced} <= set(secret["stringData"])
    assert f"secretRef: {{name: {secret['metadata']['name']}}}" in text
