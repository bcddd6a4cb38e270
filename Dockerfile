# syntax=docker/dockerfile:1
#
# LLM gateway appliance image.
#
#   docker build -t llm-gateway:local .
#   docker compose -f compose/compose.yaml up -d      (see compose/compose.yaml)
#
# Two stages: "build" creates a virtualenv in /opt/venv from the pinned
# requirements.lock plus the gateway package itself; "runtime" copies only
# that virtualenv onto a fresh slim base and runs as an unprivileged user.
# Every runtime dependency ships manylinux wheels for CPython 3.11, so no
# compiler is installed in either stage.
#
# PYTHON_IMAGE may be overridden (for example with a digest-pinned reference
# or a locally built base), but both stages must use the same image because
# the virtualenv's interpreter symlinks point into the base image's Python.
# Where no container registry answers, scripts/make_base_image.sh builds a local
# stand-in (Debian bookworm + python3 3.11, debootstrapped) and then:
#   podman build --pull=never --format docker \
#     --build-arg PYTHON_IMAGE=localhost/llm-gateway-base:bookworm-python3.11 -t llm-gateway:local .
ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src

RUN python -m venv /opt/venv

# Dependencies first, from the lock only, so this layer is cached until the
# lock changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# Then the application itself, without touching the pinned dependencies.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import gateway" \
    && find /opt/venv -depth -type d -name __pycache__ -exec rm -rf {} +

# --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="llm-gateway" \
      org.opencontainers.image.description="OpenAI-compatible LLM gateway (Falcon + Granian)"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/app \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=2906 \
    GATEWAY_CONFIG=/app/config/config.yaml \
    GATEWAY_DATA_DIR=/app/data

# --no-log-init: avoid huge sparse /var/log/lastlog entries for high UIDs.
RUN groupadd --gid "${APP_GID}" gateway \
    && useradd --uid "${APP_UID}" --gid gateway --no-log-init \
        --home-dir /app --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/config /app/data \
    && chown -R gateway:gateway /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Numeric so runtimes (and Kubernetes runAsNonRoot) can verify it is not root.
USER ${APP_UID}:${APP_GID}

EXPOSE 2906
VOLUME ["/app/config", "/app/data"]

# `python -m gateway serve` execs Granian, so Granian is PID 1 and receives
# SIGTERM directly for a graceful shutdown.
STOPSIGNAL SIGTERM

# No curl in slim images: probe with the standard library. Uses the port the
# gateway listens on inside the container (GATEWAY_PORT, default 2906).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('GATEWAY_PORT') or '2906'; resp = urllib.request.urlopen('http://127.0.0.1:' + port + '/health/liveliness', timeout=4); sys.exit(0 if resp.status == 200 else 1)"]

CMD ["python", "-m", "gateway", "serve"]
