FROM debian:bookworm-slim AS build
ARG NGINX_VERSION=1.25.3
ENV BUILD_DIR /usr/src
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential curl ca-certificates libpcre3-dev zlib1g-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR $BUILD_DIR
RUN curl -fsSL https://nginx.org/download/nginx-$NGINX_VERSION.tar.gz | tar -xz \
    && cd nginx-$NGINX_VERSION \
    && ./configure --prefix=/etc/nginx --with-http_ssl_module --with-cc-opt="-O2 $CFLAGS" \
    && make -j$(nproc) && make install
RUN { echo 'daemon off;'; cat /etc/nginx/conf/nginx.conf; } | tee /tmp/nginx.conf > /dev/null
FROM debian:bookworm-slim
COPY --from=build /etc/nginx /etc/nginx
RUN groupadd -r nginx && useradd -r -g nginx nginx \
    && ln -sf /dev/stdout /var/log/nginx-access.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["/etc/nginx/sbin/nginx", "-g", "daemon off;"]
