ARG BASE=debian:12
FROM $BASE AS base
RUN useradd -u 1000001 builder
FROM base AS build
COPY --from=base /etc/passwd /tmp/passwd
COPY --from=ghost /x /y
COPY a b c
FROM build AS build
FROM scratch
COPY --from=0 / /
