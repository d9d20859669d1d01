#!/usr/bin/env bash
# `make demo`: on a fresh Debian 12 machine, as root, offline except for Debian's mirror:
#   an offline base image (busybox from Debian's busybox-static), an example image on top of it
#   (built when the build engine is there, else imported), a save/load round trip, and the image list.
# Idempotent: the busybox image has the same ID every time; an existing example image is kept.
# The store is $DOCKYARD_ROOT (default: ./demo-root, so the demo never touches /var/lib/dockyard).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKYARD_ROOT=${DOCKYARD_ROOT:-$PWD/demo-root}
command -v dockyard >/dev/null 2>&1 || export PATH=$PWD/.venv/bin:$PATH

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if ! dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q ' installed$'; then
  say "installing busybox-static (Debian mirror)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi

say "dockyard bootstrap busybox   (store: $DOCKYARD_ROOT)"
dockyard bootstrap busybox -t busybox:latest

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
printf '#!/bin/sh\necho "Hello from a dockyard image ($(uname -m))"\n' > "$work/ctx/hello"
chmod 755 "$work/ctx/hello"

if dockyard image inspect example:latest >/dev/null 2>&1; then
  say "example:latest is already there"
else
  built=no
  if dockyard build --help >/dev/null 2>&1; then
    say "dockyard build -t example:latest"
    printf 'FROM busybox:latest\nCOPY hello /hello\nCMD ["/hello"]\n' > "$work/ctx/Dockerfile"
    if dockyard build -t example:latest "$work/ctx"; then built=yes; else echo "build failed: importing instead"; fi
  fi
  if [ "$built" = no ]; then
    say "dockyard import example.tar example:latest"
    root=$work/rootfs
    mkdir -p "$root/bin" "$root/etc" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    cp "$work/ctx/hello" "$root/hello"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/example.tar" .
    dockyard import -c 'CMD ["/hello"]' -c 'LABEL org.opencontainers.image.title=example' \
      -m "dockyard demo example" "$work/example.tar" example:latest
  fi
fi

say "dockyard save example:latest | dockyard load"
dockyard save example:latest | dockyard load

say "dockyard system check"
dockyard system check

say "dockyard images"
dockyard images

say "dockyard run --rm example:latest"
dockyard run --rm example:latest
