#!/usr/bin/env bash
# The Debian packages the test suite runs against, installed only when missing (idempotent; a
# no-op on a machine that has them). scripts/test.sh calls it first.
#
#   podman runc slirp4netns uidmap mmdebstrap
#                              build and run the container image (tests/container.rs; slirp4netns
#                              is the containers' network)
#   prometheus-node-exporter prometheus-nginx-exporter nginx-light monitoring-plugins-basic
#                              real Prometheus exporters and Nagios plugins to read output from
#   systemd binutils dpkg-dev  the Debian package tests (tests/deb.rs): systemd-analyze verifies and
#                              scores the unit, strip/readelf strip and inspect the binary, and
#                              cargo-deb reads the binary's library needs with dpkg-shlibdeps
#                              (cargo-deb itself comes from crates.io: scripts/cargo-deb.sh)
#   chromium-headless-shell    a real browser for the status page (tests/status_browser.rs)
#   kubectl                    renders the kustomize base (tests/deploy.rs); it is not in Debian
#                              bookworm itself, so it comes from the Kubernetes apt repository
#                              (https://pkgs.k8s.io) or Google Cloud's, when configured
#
# apt-get runs only when something is missing, and then needs root (or sudo).
set -euo pipefail

PACKAGES=(podman runc slirp4netns uidmap mmdebstrap prometheus-node-exporter prometheus-nginx-exporter nginx-light monitoring-plugins-basic
    systemd binutils dpkg-dev chromium-headless-shell)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done
command -v kubectl >/dev/null || missing+=(kubectl)
[ ${#missing[@]} -gt 0 ] || exit 0

command -v apt-get >/dev/null || {
    echo "deps.sh: missing ${missing[*]}, and this is not a Debian-like system; install them by hand" >&2
    exit 1
}
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps.sh: missing ${missing[*]}; run scripts/deps.sh as root to install them" >&2; exit 1; }
    as_root=(sudo)
fi
echo "deps.sh: installing ${missing[*]}" >&2
"${as_root[@]}" apt-get update -qq >&2
if [[ " ${missing[*]} " == *" kubectl "* ]] && [ -z "$(apt-cache policy kubectl 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }')" ]; then
    echo "deps.sh: kubectl is not in the configured apt sources; add the Kubernetes apt repository" \
        "(https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/) and run scripts/deps.sh again" >&2
    exit 1
fi
# With recommends, as a person installing podman gets it (fuse-overlayfs, catatonit, ...).
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >&2
