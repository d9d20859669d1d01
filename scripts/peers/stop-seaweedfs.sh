#!/bin/bash
# Stop the SeaweedFS that start-seaweedfs.sh started, by its pid file, never by name. Data are kept.
# After hours of use it has taken more than 15 s to exit here.
set -u
. "$(dirname "$0")/env.sh"
pidf=$PEERS_DIR/run/seaweedfs.pid
p=$(cat "$pidf" 2>/dev/null) || { echo "seaweedfs not running (no pid file)"; exit 0; }
grep -qF "$PEERS_DIR/seaweedfs" "/proc/$p/cmdline" 2>/dev/null || { echo "seaweedfs not running (stale pid $p)"; rm -f "$pidf"; exit 0; }
kill -TERM "$p"
for _ in $(seq 1 180); do kill -0 "$p" 2>/dev/null || { rm -f "$pidf"; echo "seaweedfs stopped (pid $p)"; exit 0; }; sleep 0.25; done
echo "seaweedfs (pid $p) still running after 45 s" >&2; exit 1
