FROM alpine:3.19
RUN apk update && apk add bash curl=8.5.0-r0
RUN apk add --no-cache git openssh-client
SHELL ["/bin/ash", "-o", "pipefail", "-c"]
RUN curl -sSL https://example.com/install.sh | bash
USER root
