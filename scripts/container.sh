#!/usr/bin/env bash
# make container: builds localhost/hydra:dev with podman from local images only (no registry here):
# a debootstrap Debian base, a Swift toolchain image made from this machine's toolchain, and the
# project's Dockerfile with Swift packages from a git mirror folder. Each step is skipped when its
# image exists. Needs root (apt, debootstrap). See ../shared/docs/CONTAINERS.md for the why.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/hydra:dev}
TOOLCHAIN=${TOOLCHAIN:-$(dirname "$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")")}
SWIFT_IMAGE=${SWIFT_IMAGE:-localhost/swift:bookworm}
GIT_MIRROR=${GIT_MIRROR:-/opt/swift-packages}

need=()
for tool in podman buildah debootstrap runc; do command -v $tool >/dev/null || need+=($tool); done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# crun fails on this kernel's hybrid cgroups, and podman's default ulimits exceed the hard limits here.
if ! grep -qs 'runtime = "runc"' /etc/containers/containers.conf; then
    mkdir -p /etc/containers
    cat > /etc/containers/containers.conf <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi

if ! podman image exists localhost/debian:bookworm; then
    echo "== base image: debootstrap bookworm (minbase)"
    MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    ROOTFS=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$ROOTFS" "${MIRROR:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . | podman import - localhost/debian:bookworm
    rm -rf "$ROOTFS"
fi
# The Dockerfile's default runtime base resolves to the local image.
podman tag localhost/debian:bookworm docker.io/library/debian:bookworm-slim

if ! podman image exists "$SWIFT_IMAGE"; then
    echo "== toolchain image $SWIFT_IMAGE from $TOOLCHAIN"
    podman build --pull=never --network host -v "$TOOLCHAIN:/toolchain:ro" \
        -f Deploy/toolchain/Containerfile -t "$SWIFT_IMAGE" Deploy/toolchain
fi

echo "== $IMAGE"
start=$(date +%s)
podman build --pull=never --network host \
    --build-arg SWIFT_IMAGE="$SWIFT_IMAGE" --build-arg GIT_MIRROR="$GIT_MIRROR" \
    --build-arg HYDRA_COMMIT="$(git describe --always --dirty --abbrev=12 2>/dev/null || true)" \
    -v "$GIT_MIRROR:$GIT_MIRROR:ro" -t "$IMAGE" .
echo "== built $IMAGE in $(( $(date +%s) - start )) s"
podman image inspect "$IMAGE" --format 'size {{.Size}} bytes; user {{.Config.User}}; entrypoint {{.Config.Entrypoint}}; exposed {{.Config.ExposedPorts}}; stop signal {{.Config.StopSignal}}'
podman run --rm --network none --entrypoint /opt/hydra/hydra "$IMAGE" --version
