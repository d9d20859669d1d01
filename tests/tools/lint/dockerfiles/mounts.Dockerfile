# syntax=docker/dockerfile:1
FROM debian:12
RUN --mount=type=cache,target=/var/cache/apt --mount=type=cache,target=/var/lib/apt \
    apt-get update && apt-get install -y --no-install-recommends git=1:2.39.2-1.1
RUN --mount=type=cache,target=/var/cache/apt apt-get update && apt-get install -y curl
RUN ln -sf /bin/bash /bin/sh
