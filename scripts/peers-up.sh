#!/usr/bin/env bash
# Install and start the peer tools the tests use (idempotent): Debian packages, a busybox base image,
# qemu binfmt entries, the distribution registry (plain and with auth) and the Docker engine.
set -euo pipefail
peers=${1:-../shared/peers}
bash "$peers/install.sh"
# Foreign-architecture base images (bootstrap --platform linux/arm64) come from Debian's arm64 packages.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64 && apt-get update -qq || echo "arm64 packages: not available"
fi
bash "$peers/make-busybox-rootfs.sh" amd64
bash "$peers/binfmt-setup.sh" || echo "binfmt: not available (foreign-architecture tests will skip)"
bash "$peers/start-registry.sh"
bash "$peers/start-registry.sh" auth
bash "$peers/start-dockerd.sh"
bash "$peers/import-busybox.sh"
