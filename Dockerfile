# syntax=docker/dockerfile:1
# Godel API / worker image.
#   docker build -t godel:0.1.0 .
#   docker run -p 8080:8080 godel:0.1.0                  # API (godel serve)
#   docker run --no-healthcheck godel:0.1.0 worker       # worker (no HTTP port)

# --- build: install the package and its dependencies into a venv -------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .

# --- runtime: the venv, netcat, and nothing from the build --------------------
FROM python:3.11-slim

# netcat-openbsd: the Redis outage runbook checks reachability from the API pod
# with `nc -zv redis 6379`. Unpinned on purpose: Debian replaces old package versions
# in its archive, so a pinned one stops building; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends netcat-openbsd \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid so Kubernetes can enforce runAsNonRoot without name lookup.
RUN groupadd --system --gid 10001 godel \
    && useradd --system --uid 10001 --gid godel --home-dir /var/lib/godel \
       --shell /usr/sbin/nologin godel \
    && mkdir -p /var/lib/godel \
    && chown godel:godel /var/lib/godel

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GODEL_DATA_DIR=/var/lib/godel/.godel

WORKDIR /var/lib/godel
USER 10001:10001

EXPOSE 8080

# Liveness only: /health/live answers while the process serves HTTP, in fallback too.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=4)"]

ENTRYPOINT ["godel"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
