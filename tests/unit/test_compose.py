"""Static checks of the deployment files: docker-compose.yml, the Dockerfile,
deploy/prometheus/prometheus.yml and the Grafana provisioning (the rules and the
dashboard's queries are tested against a real Prometheus in test_monitoring.py and
tests/integration/test_prometheus.py).

The structural tests read the files with PyYAML. ``test_compose_config_validates``
additionally runs the Compose implementation's own validator (``docker compose
config -q`` or, failing that, the v1 ``docker-compose config -q``; neither needs a
running Docker engine). It fails, never skips, when no Compose implementation is
installed: CI installs one (Debian package ``docker-compose``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCE_FILE = (
    ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
)
GRAFANA_DASHBOARDS_PROVIDER = (
    ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "newswire.yml"
)

PIPELINE = ("dedup", "enrich", "store")
INFRA = ("kafka", "schema-registry", "postgres", "prometheus", "grafana")
METRICS_PORT = "9400"


# --------------------------------------------------------------------------- helpers


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load(COMPOSE_FILE)
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no services"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return _load(PROMETHEUS_FILE)


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a map or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition} (short list form means service_started)."""
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {name: "service_started" for name in dep}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in dep.items()}


def _volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    mounts = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            mounts.append((str(vol.get("source", "")), str(vol["target"])))
        else:
            parts = str(vol).split(":")
            if len(parts) == 1:
                mounts.append(("", parts[0]))
            else:
                mounts.append((parts[0], parts[1]))
    return mounts


def _is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _ports(entries: list[Any] | None) -> set[str]:
    """Container-side port numbers of an expose/ports list."""
    out = set()
    for entry in entries or []:
        if isinstance(entry, dict):
            out.add(str(entry["target"]))
        else:
            out.add(str(entry).split(":")[-1].split("/")[0])
    return out


# --------------------------------------------------------------------------- compose


def test_required_services_exist(services):
    missing = [name for name in (*INFRA, *PIPELINE, "topics") if name not in services]
    assert not missing, f"services missing from docker-compose.yml: {missing}"


def test_kafka_is_kraft_without_zookeeper(services):
    for name, svc in services.items():
        assert "zookeeper" not in name.lower(), (
            f"ZooKeeper service {name!r}: Kafka must run in KRaft mode"
        )
        assert "zookeeper" not in str(svc.get("image", "")).lower(), (
            f"{name} uses a ZooKeeper image"
        )
        assert not any("ZOOKEEPER" in key for key in _env(svc)), (
            f"{name} is configured for ZooKeeper"
        )

    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = _env(kafka)
    roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert {"broker", "controller"} <= roles
    assert env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.startswith(f"{env['KAFKA_NODE_ID']}@kafka:"), voters
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka.get("healthcheck", {}).get("test"), "kafka needs a healthcheck"


def test_schema_registry(services):
    reg = services["schema-registry"]
    assert str(reg["image"]).startswith("confluentinc/cp-schema-registry:")
    env = _env(reg)
    assert "kafka:9092" in env["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"]
    assert "8081" in env["SCHEMA_REGISTRY_LISTENERS"]
    assert _depends_on(reg).get("kafka") == "service_healthy"
    assert reg.get("healthcheck", {}).get("test")


def test_postgres(services):
    pg = services["postgres"]
    assert re.fullmatch(r"postgres:16(\.\d+)*(-[\w.]+)?", str(pg["image"])), pg["image"]
    env = _env(pg)
    assert env["POSTGRES_DB"] == env["POSTGRES_USER"] == env["POSTGRES_PASSWORD"] == "newswire"
    assert "pg_isready" in str(pg["healthcheck"]["test"])
    targets = {target: source for source, target in _volume_mounts(pg)}
    source = targets.get("/var/lib/postgresql/data")
    assert source and not _is_bind(source), "postgres data must live on a named volume"


def test_images_pinned_and_restart_policies(services):
    for name, svc in services.items():
        if "build" not in svc:
            image = str(svc.get("image", ""))
            _repo, sep, tag = image.rpartition(":")
            assert sep and "/" not in tag and tag not in ("", "latest"), (
                f"{name}: image {image!r} is not pinned"
            )
        restart = svc.get("restart")
        assert isinstance(restart, str), (
            f"{name}: restart policy must be a (quoted) string, got {restart!r}"
        )
        if name in ("topics", "schemas"):
            assert restart == "no", f"the one-shot {name} service must not restart"
        else:
            assert restart in ("always", "unless-stopped") or restart.startswith("on-failure"), (
                name,
                restart,
            )


def test_named_volumes_declared_and_bind_sources_exist(compose, services):
    declared = set((compose.get("volumes") or {}).keys())
    for name, svc in services.items():
        for source, _target in _volume_mounts(svc):
            if not source:
                continue
            if _is_bind(source):
                assert (ROOT / source).exists(), f"{name}: bind source {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared at top level"


def test_topics_one_shot(services):
    topics = services["topics"]
    assert topics["command"] == ["topics", "create"]
    assert _depends_on(topics).get("kafka") == "service_healthy"
    assert "build" in topics or str(topics.get("image", "")).startswith("newswire")


@pytest.mark.parametrize("name", PIPELINE)
def test_pipeline_service(services, name):
    svc = services[name]

    build = svc["build"]
    if isinstance(build, str):
        build = {"context": build}
    assert build["context"] in (".", "./"), f"{name}: build context must be the repo root"
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert DOCKERFILE.is_file()

    assert svc["command"] == ["consume", name]

    env = _env(svc)
    assert env["NEWSWIRE_KAFKA__BOOTSTRAP"] == "kafka:9092"
    assert env["NEWSWIRE_METRICS__PORT"] == METRICS_PORT
    assert env.get("NEWSWIRE_METRICS__HOST", "0.0.0.0") == "0.0.0.0"
    assert METRICS_PORT in _ports(svc.get("expose")) | _ports(svc.get("ports")), (
        f"{name} must expose the metrics port {METRICS_PORT}"
    )
    assert svc.get("healthcheck", {}).get("test"), f"{name} needs a healthcheck"

    deps = _depends_on(svc)
    assert deps.get("kafka") == "service_healthy"
    assert deps.get("topics") == "service_completed_successfully"
    # The pipeline runs in registry mode against the compose registry.
    assert env["NEWSWIRE_SERDE__MODE"] == "registry"
    assert env["NEWSWIRE_SERDE__REGISTRY_URL"] == "http://schema-registry:8081"
    assert deps.get("schema-registry") == "service_healthy"
    assert deps.get("schemas") == "service_completed_successfully"


def test_schemas_one_shot_registers_against_the_registry(services):
    schemas = services["schemas"]
    assert schemas["command"] == ["schemas", "register"]
    assert _depends_on(schemas).get("schema-registry") == "service_healthy"
    assert _env(schemas)["NEWSWIRE_SERDE__REGISTRY_URL"] == "http://schema-registry:8081"


@pytest.mark.parametrize("name", (*PIPELINE, "schemas"))
def test_the_serde_environment_is_read_by_the_settings(services, name, monkeypatch):
    from newswire.settings import Settings

    env = _env(services[name])
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    serde = Settings().serde
    assert (serde.mode, serde.registry_url) == ("registry", "http://schema-registry:8081")
    names = {k.split("__", 1)[1].lower() for k in env if k.startswith("NEWSWIRE_SERDE__")}
    assert names <= set(type(serde).model_fields), "a NEWSWIRE_SERDE__ variable nothing reads"


def test_dedup_state_on_named_volume(services):
    dedup = services["dedup"]
    url = _env(dedup)["NEWSWIRE_DEDUP__STATE_URL"]
    assert url.startswith("sqlite:////"), url
    state_dir = os.path.dirname(url[len("sqlite:///") :])
    mounts = {target.rstrip("/"): source for source, target in _volume_mounts(dedup)}
    source = mounts.get(state_dir.rstrip("/"))
    assert source and not _is_bind(source), f"dedup state dir {state_dir} must be a named volume"


def test_store_uses_postgres(services):
    store = services["store"]
    url = _env(store)["NEWSWIRE_STORE__URL"]
    assert re.fullmatch(r"postgresql(\+\w+)?://newswire:newswire@postgres:5432/newswire", url), url
    assert _depends_on(store).get("postgres") == "service_healthy"


def test_newswire_env_var_names(services):
    for name in (*PIPELINE, "topics", "schemas"):
        env = _env(services[name])
        assert env, f"{name} has no environment"
        bad = [key for key in env if not key.startswith("NEWSWIRE_")]
        assert not bad, f"{name}: env vars not prefixed NEWSWIRE_: {bad}"


def test_prometheus_and_grafana_services(services):
    prom = services["prometheus"]
    assert str(prom["image"]).startswith("prom/prometheus:")
    mounts = {target: source for source, target in _volume_mounts(prom)}
    # the config and the rules/ it loads, in one directory
    assert Path(mounts["/etc/prometheus"]) == Path("./deploy/prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]

    grafana = services["grafana"]
    assert str(grafana["image"]).startswith("grafana/grafana:")
    mounts = {target: source for source, target in _volume_mounts(grafana)}
    assert Path(mounts["/etc/grafana/provisioning"]) == Path("./deploy/grafana/provisioning")
    assert Path(mounts["/etc/grafana/dashboards"]) == Path("./deploy/grafana/dashboards")
    source = mounts.get("/var/lib/grafana")
    assert source and not _is_bind(source)


# --------------------------------------------------------------------------- prometheus / grafana


def test_prometheus_scrapes_every_replica_of_every_pipeline_service(prometheus):
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for name in PIPELINE:
        assert name in jobs, f"no scrape job labelled {name!r}"
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        # DNS service discovery: the service name resolves to every replica (--scale).
        assert not job.get("static_configs"), f"job {name} has fixed targets"
        (dns,) = job["dns_sd_configs"]
        assert dns["names"] == [name]
        assert dns.get("type", "SRV") == "A"
        assert str(dns["port"]) == METRICS_PORT


def test_optional_feed_follower_is_scraped_as_the_producer(services, prometheus):
    follow = services["follow"]
    assert follow["profiles"] == ["follow"], "opt-in: it polls the internet"
    assert follow["command"][:2] == ["produce", "--follow"]
    assert _env(follow)["NEWSWIRE_METRICS__PORT"] == METRICS_PORT
    assert METRICS_PORT in _ports(follow.get("expose"))
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    (dns,) = jobs["producer"]["dns_sd_configs"]
    assert dns["names"] == ["follow"] and str(dns["port"]) == METRICS_PORT


def test_prometheus_loads_the_shipped_rules(prometheus):
    rule_files = prometheus["rule_files"]
    loaded = {p for pattern in rule_files for p in PROMETHEUS_FILE.parent.glob(pattern)}
    assert loaded == set((PROMETHEUS_FILE.parent / "rules").glob("*.yml"))
    assert len(loaded) >= 2, "alerts and recording rules"


def test_grafana_provisions_the_dashboard_and_opens_on_it(services):
    provider = _load(GRAFANA_DASHBOARDS_PROVIDER)
    assert provider["apiVersion"] == 1
    (files,) = [p for p in provider["providers"] if p["type"] == "file"]
    assert files["options"]["path"] == "/etc/grafana/dashboards"
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith("/etc/grafana/dashboards/")
    assert (ROOT / "deploy" / "grafana" / "dashboards" / Path(home).name).is_file()


def test_grafana_datasource(services):
    data = _load(GRAFANA_DATASOURCE_FILE)
    assert data["apiVersion"] == 1
    (ds,) = [d for d in data["datasources"] if d["type"] == "prometheus"]
    assert ds["url"] == "http://prometheus:9090"
    assert ds["access"] == "proxy"
    assert ds.get("isDefault") is True


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile():
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    assert "python:3.11-slim" in text
    assert any(re.search(r"\bpip install (\S+ )*\.(\s|$)", ln) for ln in lines), (
        "Dockerfile must `pip install .`"
    )
    users = [ln.split(None, 1)[1] for ln in lines if ln.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0", "0:0"), "the image must run as a non-root user"
    entrypoints = [ln for ln in lines if ln.upper().startswith("ENTRYPOINT")]
    assert entrypoints and entrypoints[-1] == 'ENTRYPOINT ["newswire"]'


# ---------------------------------------------------------------- compose's own validator


def _compose_command() -> list[str] | None:
    """The available Compose implementation: the v2 plugin, else the v1 binary."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_config_validates():
    cmd = _compose_command()
    assert cmd is not None, (
        "no Compose implementation found: neither `docker compose` nor `docker-compose` "
        "works (install the Debian package: apt-get install -y docker-compose)"
    )
    # Keep the caller's COMPOSE_* settings (other files, profiles) out of the check.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        [*cmd, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"`{' '.join(cmd)} config -q` rejected docker-compose.yml:\n"
        f"{result.stdout}\n{result.stderr}"
    )
