# syntax=docker/dockerfile:1
# newswire: one image for every pipeline process (producers, dedup, enrich,
# store, topic admin). The command picks the role, e.g.
#   docker run newswire consume dedup
#   docker run -v "$PWD/articles:/in:ro" newswire produce /in

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project into a self-contained virtualenv -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . /src
RUN pip install .

# --- runtime ----------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEWSWIRE_METRICS__HOST=0.0.0.0 \
    NEWSWIRE_METRICS__PORT=9400

# Unprivileged user; /data is the mount point for persistent state (the dedup
# SQLite file). It is created here owned by that user so that a named volume
# mounted on it starts with the right owner.
RUN groupadd --system --gid 10001 newswire \
 && useradd --system --uid 10001 --gid newswire --home-dir /home/newswire \
        --create-home --shell /usr/sbin/nologin newswire \
 && mkdir -p /data \
 && chown newswire:newswire /data

COPY --from=build /opt/venv /opt/venv

USER newswire
WORKDIR /home/newswire
VOLUME ["/data"]
# Prometheus /metrics
EXPOSE 9400

# Exec form: newswire is PID 1 and receives SIGTERM/SIGINT itself, so it can
# finish its batch, commit and leave the group before exiting.
ENTRYPOINT ["newswire"]
CMD ["--help"]
