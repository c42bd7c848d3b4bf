# Multi-stage: build a wheel with its dependencies, then a slim runtime as a non-root user.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY strategies ./strategies
COPY storage ./storage
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim AS runtime
RUN useradd --create-home --uid 1000 pairpilot \
    && mkdir -p /config /data && chown pairpilot:pairpilot /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER pairpilot
WORKDIR /home/pairpilot
# numba caches compiled trading rules beside their source; site-packages is read-only here.
ENV NUMBA_CACHE_DIR=/home/pairpilot/.cache/numba
# Mount the config at /config/config.toml (set data_dir = "/data" in it) and a volume at /data.
VOLUME ["/data"]
# Unhealthy when no new candle was ticked for two candles, or an alert waits over 10 minutes.
HEALTHCHECK --interval=60s --timeout=20s --start-period=120s \
    CMD ["pairpilot", "health", "--config", "/config/config.toml"]
ENTRYPOINT ["pairpilot"]
CMD ["run", "--config", "/config/config.toml"]
