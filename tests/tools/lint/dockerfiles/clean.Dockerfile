FROM debian:12.5
ARG APP_UID=10001
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /srv
COPY --chown=10001 app /srv/app
USER ${APP_UID}
ENTRYPOINT ["/srv/app"]
