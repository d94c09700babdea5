# syntax=docker/dockerfile:1
# Vigil as a container image; docs/deploy.md walks through running it with compose.yaml (one process) and
# compose.scale.yaml (scaled out: gateway, workers, Postgres, NATS).
#
#   docker build -t vigil:0.1.0 .
#   docker build --build-arg VIGIL_LOCK=scale -t vigil:0.1.0-scale .
#
# Every Python package comes from one lock, checked against its hash: requirements/runtime.lock, or with the
# build argument VIGIL_LOCK=scale requirements/scale.lock (the same pins plus asyncpg and nats-py, which
# Postgres and NATS need: vigil gateway, worker and deliver). The base image is pinned by tag (add
# @sha256:<digest> to both FROM lines for byte-identical rebuilds).

# ---- build: a virtual environment with the locked dependencies and Vigil's wheel
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src

# runtime or scale; .dockerignore lets no other lock into the build context.
ARG VIGIL_LOCK=runtime

# Dependencies first: this layer is reused until the lock changes.
COPY requirements/${VIGIL_LOCK}.lock requirements/${VIGIL_LOCK}.lock
RUN python -m venv /opt/vigil \
    && /opt/vigil/bin/pip install --no-cache-dir --require-hashes -r "requirements/${VIGIL_LOCK}.lock"

COPY pyproject.toml README.md LICENSE ./
COPY vigil/ vigil/
COPY bots/ bots/
COPY detector/ detector/
COPY storage/ storage/
COPY config/ config/
# The example conversations: vigil/data links to examples/, and the wheel carries them.
COPY examples/demo_conversations.jsonl examples/realistic_conversations.jsonl examples/

# Built with the setuptools and wheel pinned in the lock (no build environment fetched from the index), then
# installed without dependencies: all of them came from the lock.
RUN /opt/vigil/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/vigil/bin/pip install --no-cache-dir --no-deps /wheels/vigil-*.whl

# ---- runtime: the virtual environment, owned by root (so the model and code are read-only), run as uid 10001
FROM python:3.11-slim-bookworm

ENV PATH=/opt/vigil/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIGIL_CONFIG=/etc/vigil/vigil.toml \
    VIGIL_DATA=/data

# /data holds the database and evidence packs: owner-only, for the service account. A new named volume
# mounted there starts with this owner and mode.
RUN groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin vigil \
    && install -d -o vigil -g vigil -m 0700 /data \
    && install -d -m 0755 /etc/vigil

COPY --from=build /opt/vigil /opt/vigil
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/vigil-entrypoint

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

# The HTTP ingest API and the metrics endpoint, when the config enables them (listening on 0.0.0.0 inside).
EXPOSE 8787 9464

# `vigil status` reads the metrics endpoint named in the config and exits non-zero when nothing answers.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["vigil-entrypoint", "status"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["vigil-entrypoint"]
CMD ["run"]
