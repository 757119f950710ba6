# syntax=docker/dockerfile:1
# xoelt: the ELT command in a container. `docker run IMAGE run warbyparker/gladly_daily`.
#
# Build:  docker build -t xoelt:0.1.0 .
#         docker build --build-arg XOELT_EXTRAS="dbt dbt-snowflake" -t xoelt:0.1.0-dbt .
#         (optional extras from pyproject.toml, e.g. dbt as the transform engine)
# Two stages: `build` installs the locked dependencies and xoelt (uv, from uv.lock, no dev
# dependencies) into /opt/venv; the final image is the same slim Python plus that venv,
# pipelines/ and sql/, run as a non-root user. No credentials are baked in: they come from
# the environment at run time (a Kubernetes Secret via the Helm chart in helm/xoelt).
# Pin the base images by digest too (python:3.11.14-slim-bookworm@sha256:…) where the
# registry is reachable when this is built.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
ARG XOELT_EXTRAS=""
COPY --from=uv /uv /usr/local/bin/uv
# Bytecode compiled at build time: the runtime filesystem is read-only.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /build
# Dependencies first (their layer is reused while only src/ changes), then xoelt itself,
# installed non-editable so the final image needs no source tree.
COPY pyproject.toml uv.lock README.md ./
# XOELT_EXTRAS is split into words on purpose: one --extra per name.
# hadolint ignore=SC2086
RUN --mount=type=cache,target=/root/.cache/uv \
    set -- && for extra in ${XOELT_EXTRAS}; do set -- "$@" --extra "$extra"; done \
    && uv sync --frozen --no-dev --no-install-project "$@"
COPY src/ src/
# hadolint ignore=SC2086 (the same word split)
RUN --mount=type=cache,target=/root/.cache/uv \
    set -- && for extra in ${XOELT_EXTRAS}; do set -- "$@" --extra "$extra"; done \
    && uv sync --frozen --no-dev --no-editable "$@"

FROM ${PYTHON_IMAGE}
ARG XOELT_UID=10001
LABEL org.opencontainers.image.title="xoelt" \
      org.opencontainers.image.description="SaaS data to object storage to Snowflake, bronze to gold, in one command" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid "${XOELT_UID}" xoelt \
    && useradd --system --no-log-init --uid "${XOELT_UID}" --gid xoelt \
       --home-dir /tmp --no-create-home --shell /usr/sbin/nologin xoelt
COPY --from=build /opt/venv /opt/venv
# The CLI reads ./pipelines and ./sql; XOELT_PIPELINES / XOELT_SQL make that independent of
# the working directory. XOELT_HOME is scratch state (an emptyDir in the chart).
WORKDIR /app
COPY pipelines/ pipelines/
COPY sql/ sql/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XOELT_PIPELINES=/app/pipelines \
    XOELT_SQL=/app/sql \
    XOELT_HOME=/tmp/xoelt \
    HOME=/tmp
USER ${XOELT_UID}:${XOELT_UID}
ENTRYPOINT ["xoelt"]
CMD ["--help"]
