FROM --platform=linux/amd64 debian:12 AS context
FROM --platform=$BUILDPLATFORM golang:1.22 AS tools
FROM --platform=$TARGETPLATFORM alpine:3.19
COPY --from=tools /go/bin /usr/local/bin
USER 1000
