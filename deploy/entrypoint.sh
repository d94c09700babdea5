#!/bin/bash
# Vigil's container entrypoint (docs/deploy.md).
#
#   vigil-entrypoint [run]        check the data folder and the config, then exec `vigil run`
#   vigil-entrypoint gateway|worker|deliver ...
#                                 check the config, then exec that command (scaled out, compose.scale.yaml)
#   vigil-entrypoint COMMAND ...  any other vigil command with the same config: cases, status, purge, ...
#
# `status` is the health check: it reads the metrics endpoint, which `vigil run`, `vigil gateway` and
# `vigil worker` serve with [metrics] enabled (`vigil deliver` serves none, so it fails beside it).
#
# VIGIL_CONFIG (default /etc/vigil/vigil.toml) and VIGIL_DATA (default /data) move the two paths.
# Secrets come from the environment only (docker's env_file); nothing here reads or prints them.
set -euo pipefail

config="${VIGIL_CONFIG:-/etc/vigil/vigil.toml}"
data="${VIGIL_DATA:-/data}"

# Anything Vigil or a command run here creates is owner-only; Vigil also sets its own files' modes.
umask 077

fail() {
    printf 'vigil-entrypoint: %s\n' "$*" >&2
    exit 1
}

check_data() {
    if [[ ! -d "$data" ]]; then
        fail "$data is missing (or uid $(id -u) cannot reach it): mount a volume there; the database and evidence live in it"
    fi
    # Root passes every permission test, so only a real write proves the folder is usable.
    local probe="$data/.vigil-write-check.$$"
    if ! { : >"$probe"; } 2>/dev/null; then
        fail "$data is not writable by uid $(id -u): give the volume to that user (chown $(id -u):$(id -g))"
    fi
    rm -f -- "$probe"
}

check_config() {
    [[ -f "$config" ]] || fail "no config file at $config: mount your vigil.toml there, read-only"
    if ! vigil check-config "$config" >&2; then
        fail "$config has the problems listed above; not starting"
    fi
}

if [[ $# -eq 0 || "$1" == "run" ]]; then
    [[ $# -eq 0 ]] || shift
    check_data
    check_config
    exec vigil --config "$config" run "$@"
fi
if [[ "$1" == "gateway" || "$1" == "worker" || "$1" == "deliver" ]]; then
    # Scaled out, their data is in Postgres: there is no data volume to check, only the config.
    check_config
    exec vigil --config "$config" "$@"
fi
exec vigil --config "$config" "$@"
