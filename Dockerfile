# syntax=docker/dockerfile:1
# pairpilot in a container: `docker compose up -d` with compose.yaml (see README, "Docker").
# Dependencies come from requirements.lock (exact versions and sha256 of every file). For a
# build that reproduces, pin the base image's digest too:
#   docker buildx imagetools inspect python:3.12-slim-bookworm   # prints "Digest: sha256:..."
#   docker compose build --build-arg PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# Build stage: a virtual environment with the locked dependencies and pairpilot. Only the
# environment is copied on, so no wheel or pip cache ends up in a runtime layer.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pairpilot
WORKDIR /src
COPY requirements.lock ./
RUN /opt/pairpilot/bin/pip install --require-hashes --only-binary :all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY strategies ./strategies
COPY storage ./storage
RUN /opt/pairpilot/bin/pip install --no-deps --no-build-isolation . \
    && /opt/pairpilot/bin/pip check

FROM ${PYTHON_IMAGE} AS runtime
# A numeric user, so `runAsNonRoot` policies can check it; /data is its volume.
RUN groupadd --gid 10001 pairpilot \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin pairpilot \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /opt/pairpilot /opt/pairpilot
# The container's config: data_dir is the volume. Mount your own over it (read-only is fine).
COPY deploy/docker/config.toml /etc/pairpilot/config.toml
ENV PATH=/opt/pairpilot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/home/pairpilot/.cache/numba
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# Exit 0 healthy, 1 unhealthy (a restart would not help), 3 unhealthy (a restart would): Docker
# marks both unhealthy; `pairpilot health` prints which check failed (docker inspect).
HEALTHCHECK --interval=60s --timeout=20s --start-period=300s \
    CMD ["pairpilot", "health", "--config", "/etc/pairpilot/config.toml"]
# Run with an init as PID 1 (`docker run --init`, compose's `init: true`): it forwards SIGTERM
# to pairpilot (which stops cleanly on it) and reaps the chart and sweep worker processes.
ENTRYPOINT ["pairpilot"]
CMD ["--log-format", "json", "run", "--config", "/etc/pairpilot/config.toml"]
