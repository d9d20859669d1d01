# shellcheck shell=bash
# Source me (bash), e.g. from the project root:  . scripts/peers/env.sh
# Says where the peer tools keep their state and how to reach them; writes the containers-* configs.
# PEERS_DIR (default /var/tmp/dockyard-peers) holds images, stores, registry data, logs, sockets, pid files.
export PEERS_DIR=${PEERS_DIR:-/var/tmp/dockyard-peers}
mkdir -p "$PEERS_DIR"/{run,logs,containers,images,registry,results}
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)      # absolute: it goes into socket paths and config files
export PEERS_KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Debian's docker.io 20.10 client: BuildKit built in. A /usr/local/bin/docker (28.x, no buildx) may come first on PATH.
export DOCKER=/usr/bin/docker
# Our dockerd listens only here (start-dockerd.sh writes the same value into daemon.json "hosts"),
# never on /var/run/docker.sock. Set unconditionally: a tcp:// DOCKER_HOST must not end up in "hosts".
export DOCKER_HOST=unix://$PEERS_DIR/run/docker.sock
# Registries (start-registry.sh): plain, and htpasswd with peer:peerpass. Not named REGISTRY_*: the registry
# reads every REGISTRY_<SECTION> variable as a config override (REGISTRY_AUTH=... made it panic).
export PEERS_REGISTRY=127.0.0.1:5000 PEERS_REGISTRY_AUTH=127.0.0.1:5001
export CONTAINERS_STORAGE_CONF=$PEERS_DIR/containers/storage.conf
export CONTAINERS_REGISTRIES_CONF=$PEERS_DIR/containers/registries.conf
export CONTAINERS_CONF=$PEERS_DIR/containers/containers.conf
# Generated files: (re)written only when the wanted content differs, so a kit update takes effect.
_peers_conf() { [ "$(cat "$1" 2>/dev/null)" = "$2" ] || printf '%s\n' "$2" > "$1"; }
_peers_conf "$CONTAINERS_STORAGE_CONF" "[storage]
driver = \"overlay\"
runroot = \"$PEERS_DIR/run/containers\"
graphroot = \"$PEERS_DIR/containers/store\""
_peers_conf "$CONTAINERS_REGISTRIES_CONF" 'unqualified-search-registries = []
short-name-mode = "permissive"
[[registry]]
location = "127.0.0.1:5000"
insecure = true
[[registry]]
location = "localhost:5000"
insecure = true
[[registry]]
location = "127.0.0.1:5001"
insecure = true'
# No bridge networking here and no CAP_SYS_RESOURCE: host network, rlimits no higher than the machine's
# (without default_ulimits podman/buildah runs fail with "error setting rlimit type 7"); crun fails on hybrid cgroups.
_peers_conf "$CONTAINERS_CONF" '[containers]
netns = "host"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"'
unset -f _peers_conf
