# hadolint global ignore=DL3059
FROM debian:12
# hadolint ignore=DL3008,DL3015
RUN apt-get update && apt-get install -y git && rm -rf /var/lib/apt/lists/*
RUN echo one
RUN echo two
# hadolint ignore=DL3003
RUN cd /tmp
