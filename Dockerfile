# SiteGuard images. Two targets:
#
#   docker build --target edge   -t siteguard-edge .    # detector only: onnxruntime + OpenCV, no torch
#   docker build --target server -t siteguard-server .  # service + alerts + web panel (+ PostgreSQL driver)
#
# The Python environment is built by scripts/install.sh, the same script CI runs on a clean machine
# (`.ci/run` -> `make test` -> `scripts/install.sh`).
# tests/ops/test_dockerfile.py keeps the two from drifting: every RUN that installs Python packages must
# go through scripts/install.sh. tests/ops/test_containers.py builds and runs both targets.
#
# No registry? Build FROM a local Debian base (scripts/base-image.sh):
#   docker build --network host --build-arg PYTHON_IMAGE=$(scripts/base-image.sh) --target edge .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------
# Build stages: one virtual environment per image, at the same path the runtime stage uses
# (/opt/siteguard/.venv), so the venv's absolute paths stay valid after COPY --from.
# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build-edge
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 SITEGUARD_VENV=/opt/siteguard/.venv
WORKDIR /opt/siteguard
COPY pyproject.toml README.md ./
COPY scripts/install.sh scripts/install.sh
# Dependencies first: this layer changes only with pyproject.toml, not with every source change.
RUN scripts/install.sh deps
# Only the packages an edge box runs: the CLI dispatcher and the detector. service/, alerts/ and
# training/ are absent, so `siteguard --help` lists only the detector's commands there.
COPY siteguard/ siteguard/
COPY detector/ detector/
RUN scripts/install.sh python

# The server's venv is the edge's plus the server extras: the shared dependencies install once.
FROM build-edge AS build-server
RUN scripts/install.sh deps postgres
COPY service/ service/
COPY alerts/ alerts/
COPY training/ training/
COPY configs/ configs/
COPY models/ models/
# [postgres] adds the psycopg driver; no [train] extra, so no torch in the server image either.
RUN scripts/install.sh python postgres

# ---------------------------------------------------------------------------------------------------
# Runtime base: non-root user, data under /var/lib/siteguard (mount a volume there).
# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/siteguard/.venv/bin:$PATH
# libgomp1: onnxruntime's OpenMP runtime; libglib2.0-0: OpenCV's video I/O (RTSP via its bundled FFmpeg).
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libgomp1 libglib2.0-0 tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 siteguard \
    && useradd --system --uid 10001 --gid siteguard --home-dir /var/lib/siteguard \
        --shell /usr/sbin/nologin siteguard \
    && install -d -o siteguard -g siteguard -m 0750 /var/lib/siteguard \
    && install -d /opt/siteguard \
    && ln -s /var/lib/siteguard /opt/siteguard/var
# The configs' relative defaults (var/service, var/detector/outbox.sqlite3, ...) resolve into the
# /var/lib/siteguard volume through that link; the code and venv under /opt/siteguard stay read-only.
WORKDIR /opt/siteguard
ENTRYPOINT ["/usr/bin/tini", "--", "siteguard"]

# ---------------------------------------------------------------------------------------------------
# edge: `siteguard detect` next to the cameras. Metrics (and the health probe) on :9108.
# ---------------------------------------------------------------------------------------------------
FROM runtime AS edge
COPY --from=build-edge /opt/siteguard /opt/siteguard
COPY configs/ configs/
COPY models/ models/
# Metrics must be reachable from Prometheus outside the container (the config default is loopback).
# The health check probes SITEGUARD_DETECTOR__METRICS__PORT when set (`--network host` on a busy box).
ENV SITEGUARD_DETECTOR__METRICS__HOST=0.0.0.0
USER siteguard:siteguard
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('SITEGUARD_DETECTOR__METRICS__PORT', '9108'), timeout=4)"]
CMD ["detect", "--config", "/etc/siteguard/detector.yaml"]

# ---------------------------------------------------------------------------------------------------
# server: `siteguard serve` — API, alert panel, /metrics. Stateless when pointed at PostgreSQL.
# ---------------------------------------------------------------------------------------------------
FROM runtime AS server
COPY --from=build-server /opt/siteguard /opt/siteguard
# Another port (`--network host`): -e SITEGUARD_PORT=8010; the health check follows it.
ENV SITEGUARD_HOST=0.0.0.0 SITEGUARD_PORT=8000
USER siteguard:siteguard
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SITEGUARD_PORT', '8000'), timeout=4)"]
CMD ["serve"]
