# bread's one image: every service is `bread run SERVICE` (each Deployment picks its own with args).
# The build stage compiles nothing of ours but installs wheels into a virtualenv; the final stage has no
# build tools, runs as a non-root user, and keeps its data (RocksDB tables, the pay ledger) under /data.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/bread
WORKDIR /src
COPY pyproject.toml README.md LICENSE topics.yaml ./
COPY agents ./agents
COPY api ./api
COPY ops ./ops
RUN /opt/bread/bin/pip install --upgrade pip && /opt/bread/bin/pip install .

FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /data --create-home bread
COPY --from=build /opt/bread /opt/bread
COPY topics.yaml /etc/bread/topics.yaml
ENV PATH=/opt/bread/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BREAD_TOPICS_FILE=/etc/bread/topics.yaml \
    BREAD_DATA_DIR=/data \
    BREAD_BIND=0.0.0.0
USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8081 8082 8083 8084 8088 6081
ENTRYPOINT ["bread"]
CMD ["run", "gateway"]
