FROM rust:1.74 AS builder
ARG TARGET=x86_64-unknown-linux-musl
RUN rustup target add $TARGET
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo "fn main() {}" > src/main.rs && cargo build --release --target $TARGET && rm -rf src
COPY . .
RUN cargo build --release --target $TARGET \
    && strip target/$TARGET/release/app \
    && ls -la target/$TARGET/release/ | grep app
RUN VERSION=`cat Cargo.toml | grep '^version' | head -1 | cut -d'"' -f2` && echo $VERSION > /version

FROM alpine:3.19
RUN apk add --no-cache ca-certificates tini
COPY --from=builder /build/target/x86_64-unknown-linux-musl/release/app /usr/local/bin/app
COPY --from=builder /version /version
ENTRYPOINT ["/sbin/tini", "--"]
CMD ["app"]
