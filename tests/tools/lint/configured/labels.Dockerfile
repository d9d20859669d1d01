FROM registry.corp.example/base:1 AS base
LABEL maintainer="ops@example.com" org.opencontainers.image.source="https://git.example.com/x"
FROM quay.io/foo/bar:2 AS other
LABEL maintainer="not an email" org.opencontainers.image.created="2024-01-02T03:04:05Z" org.opencontainers.image.licenses="Apache-2.0 OR MIT"
LABEL org.opencontainers.image.revision="abc" org.opencontainers.image.version="1.2" extra="x" description=""
FROM base
LABEL org.opencontainers.image.created="yesterday" org.opencontainers.image.licenses="Nope-1.0" org.opencontainers.image.version="1.2.3-rc.1+build.5"
COPY --from=ghcr.io/acme/tool:1 /bin/tool /bin/tool
FROM ubuntu:22.04
