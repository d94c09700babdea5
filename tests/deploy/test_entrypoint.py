"""``deploy/entrypoint.sh`` run by bash as the container runs it: checks, ``vigil run``, health, SIGTERM, and
the scale-out roles (``gateway``, ``worker``, ``deliver``).

The script's two paths come from ``VIGIL_CONFIG`` and ``VIGIL_DATA`` here, so no root and no container are
needed; ``vigil`` is the one installed next to this Python.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
NOBODY = 65534


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(path: Path, *, data: Path, model_dir: Path, metrics_port: int, extra: str = "") -> Path:
    # Only the console sink and the metrics endpoint: no platform, no secret needed.
    path.write_text(
        f'[storage]\ndatabase = "{data / "vigil.sqlite3"}"\n'
        f'[detector]\nmodel_dir = "{model_dir}"\nintra_op_threads = 1\n'
        f"[console]\nenabled = true\n[metrics]\nenabled = true\nport = {metrics_port}\n{extra}",
        encoding="utf-8",
    )
    return path


def environment(*, config: Path, data: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIGIL_CONFIG": str(config),
        "VIGIL_DATA": str(data),
    }


def entrypoint(
    *args: str, env: dict[str, str], user: int | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        user=user,
    )


def test_it_checks_starts_vigil_answers_the_health_check_and_stops_on_sigterm(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = write_config(
        tmp_path / "vigil.toml", data=data, model_dir=keyword_model_dir, metrics_port=free_port()
    )
    env = environment(config=config, data=data)

    down = entrypoint("status", env=env)
    assert down.returncode == 1 and "no running Vigil answered" in down.stdout

    log = (tmp_path / "stderr.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(
        ["bash", str(ENTRYPOINT)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"exited early: {(tmp_path / 'stderr.log').read_text()}"
            health = entrypoint("status", env=env)
            if health.returncode == 0:
                break
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.3)
        assert "queue" in health.stdout.lower()
        assert not list(data.glob(".vigil-write-check*"))  # the probe cleans up after itself
        assert stat.S_IMODE((data / "vigil.sqlite3").stat().st_mode) == 0o600
    finally:
        # bash exec'd vigil, so this signal reaches vigil itself, as docker stop's would.
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
        log.seek(0)
        stderr = log.read()
        log.close()
    assert returncode == 0, stderr
    assert "OK" in stderr  # check-config ran first
    assert "vigil stopped" in stderr

    # Other commands pass through to vigil, with the same config.
    cases = entrypoint("cases", env=env)
    assert cases.returncode == 0 and cases.stdout.strip() == "no cases", cases.stderr


def test_commands_other_than_run_skip_the_start_checks(tmp_path: Path) -> None:
    env = environment(config=tmp_path / "missing.toml", data=tmp_path / "no-data")
    shown = entrypoint(
        "--config", str(REPO / "config" / "vigil.example.toml"), "show", "example-config", env=env
    )
    assert shown.returncode == 0 and "[storage]" in shown.stdout


def test_a_missing_data_folder_stops_it_with_a_clear_message(tmp_path: Path, keyword_model_dir: Path) -> None:
    data = tmp_path / "data"
    config = write_config(
        tmp_path / "vigil.toml", data=data, model_dir=keyword_model_dir, metrics_port=free_port()
    )

    result = entrypoint(env=environment(config=config, data=data))

    assert result.returncode == 1
    assert f"{data} is missing (or uid {os.getuid()} cannot reach it): mount a volume there" in result.stderr
    assert not data.exists()


def test_an_unwritable_data_folder_stops_it_with_a_clear_message(keyword_model_dir: Path) -> None:
    # Root may write anywhere, so as root the script runs as nobody; otherwise the folder is made read-only.
    user = NOBODY if os.geteuid() == 0 else None
    # Outside pytest's 0700 base folder, so that nobody can reach the data folder (and only fail to write).
    with tempfile.TemporaryDirectory(prefix="vigil-entrypoint-") as name:
        root = Path(name)
        root.chmod(0o755)
        data = root / "data"
        data.mkdir(mode=0o755 if user is not None else 0o555)
        config = write_config(
            root / "vigil.toml", data=data, model_dir=keyword_model_dir, metrics_port=free_port()
        )
        try:
            result = entrypoint("run", env=environment(config=config, data=data), user=user)
        finally:
            data.chmod(0o755)

        assert result.returncode == 1
        uid = NOBODY if user is not None else os.getuid()
        assert f"{data} is not writable by uid {uid}" in result.stderr
        assert list(data.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[policy]\ntreshold = 0.5\n", "policy.treshold"),
        ('[http]\nenabled = true\nsecret_env = "VIGIL_TEST_UNSET_SECRET"\n', "VIGIL_TEST_UNSET_SECRET"),
    ],
    ids=["unknown-key", "missing-secret"],
)
def test_a_bad_config_stops_it_before_vigil_runs(
    tmp_path: Path, keyword_model_dir: Path, extra: str, expected: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = write_config(
        tmp_path / "vigil.toml", data=data, model_dir=keyword_model_dir, metrics_port=free_port(), extra=extra
    )
    env = environment(config=config, data=data)
    env.pop("VIGIL_TEST_UNSET_SECRET", None)

    result = entrypoint(env=env)

    assert result.returncode == 1
    assert expected in result.stdout + result.stderr
    assert f"{config} has the problems listed above; not starting" in result.stderr
    assert list(data.iterdir()) == []  # vigil run never opened the database


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = entrypoint(env=environment(config=tmp_path / "vigil.toml", data=data))
    assert result.returncode == 1
    assert f"no config file at {tmp_path / 'vigil.toml'}: mount your vigil.toml there" in result.stderr


# ---------------------------------------------------------------------------------------------- scaled out

SCALE_ROLES = ("gateway", "worker", "deliver")


@pytest.mark.parametrize("role", SCALE_ROLES)
def test_the_scale_out_roles_name_a_missing_config_file(tmp_path: Path, role: str) -> None:
    result = entrypoint(role, env=environment(config=tmp_path / "vigil.toml", data=tmp_path / "no-data"))
    assert result.returncode == 1
    assert f"no config file at {tmp_path / 'vigil.toml'}: mount your vigil.toml there" in result.stderr


def test_a_bad_scale_out_config_stops_a_worker_before_it_starts(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text(
        '[storage]\nbackend = "postgres"\npostgres_dsn_env = "VIGIL_TEST_UNSET_DSN"\n'
        '[broker]\nenabled = true\nurl_env = "VIGIL_TEST_UNSET_NATS"\n'
        f'[detector]\nmodel_dir = "{keyword_model_dir}"\nintra_op_threads = 1\n',
        encoding="utf-8",
    )
    env = environment(config=config, data=tmp_path / "no-data")
    env.pop("VIGIL_TEST_UNSET_DSN", None)
    env.pop("VIGIL_TEST_UNSET_NATS", None)

    result = entrypoint("worker", "--name", "worker-1", env=env)

    assert result.returncode == 1
    assert "VIGIL_TEST_UNSET_DSN" in result.stderr and "VIGIL_TEST_UNSET_NATS" in result.stderr
    assert f"{config} has the problems listed above; not starting" in result.stderr


def test_the_scale_out_roles_need_no_data_folder_and_reach_vigil(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    # A valid config that is not a scale-out one: the checks pass without a data folder, and `vigil worker`
    # itself gives the refusal, with the same config.
    config = write_config(
        tmp_path / "vigil.toml", data=tmp_path, model_dir=keyword_model_dir, metrics_port=free_port()
    )
    result = entrypoint(
        "worker", "--name", "worker-1", env=environment(config=config, data=tmp_path / "no-data")
    )
    assert result.returncode != 0
    assert "OK" in result.stderr and "is missing" not in result.stderr  # check-config ran, no data check
    assert "vigil worker needs [broker] enabled = true in the config" in result.stderr
