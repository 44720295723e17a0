#!/usr/bin/env bash
# Make the local Python base image the Dockerfile builds FROM where no image registry is reachable.
#
#   scripts/base-image.sh            # prints the tag, e.g. siteguard-base:bookworm-3f2a9c1d0b4e
#   docker build --build-arg PYTHON_IMAGE=$(scripts/base-image.sh | tail -n 1) --target edge .
#
# Debian bookworm (minbase + python3, python3-venv, python3-pip, ca-certificates) from the mirror
# this machine's apt uses, with this machine's CA bundle copied in (package installs inside builds
# go through the same TLS path as the host's), then `docker import`ed. The tag carries a hash of
# every input (this script, suite, mirror, packages, CA bundle): a second run only checks that the
# image exists. Needs root, debootstrap and a running Docker engine.
set -euo pipefail

SUITE=${SITEGUARD_BASE_SUITE:-bookworm}
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
CA_BUNDLE=${SITEGUARD_BASE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
REPO=siteguard-base

debian_mirror() {
    # The first apt source serving "$SUITE" itself (not -updates / -security).
    if [ -n "${SITEGUARD_DEBIAN_MIRROR:-}" ]; then
        echo "$SITEGUARD_DEBIAN_MIRROR"
        return
    fi
    apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' \
        | awk -v suite="$SUITE" '$2 == suite { print $1; exit }'
}

MIRROR=$(debian_mirror)
[ -n "$MIRROR" ] || { echo "no apt source for $SUITE; set SITEGUARD_DEBIAN_MIRROR" >&2; exit 1; }
[ -r "$CA_BUNDLE" ] || { echo "no CA bundle at $CA_BUNDLE" >&2; exit 1; }

HASH=$( { sha256sum "${BASH_SOURCE[0]}" "$CA_BUNDLE" | cut -d' ' -f1; echo "$SUITE $MIRROR $PACKAGES"; } \
    | sha256sum | cut -c1-12)
TAG="$REPO:$SUITE-$HASH"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image present: $TAG" >&2
    echo "$TAG"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debootstrap not installed" >&2; exit 1; }

ROOT=$(mktemp -d /var/tmp/siteguard-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap $SUITE from $MIRROR into $ROOT" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >&2

# This machine's CA bundle, also as a local CA so update-ca-certificates keeps it.
install -m 0644 "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
install -m 0644 "$CA_BUNDLE" "$ROOT/usr/local/share/ca-certificates/siteguard-host-bundle.crt"

# Small like Debian's slim images: no package caches, lists, docs, man pages or locales, now or
# in later `apt-get install`s.
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/siteguard-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
cat > "$ROOT/etc/apt/apt.conf.d/siteguard-slim" <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
EOF
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$ROOT"/usr/share/{man,info,locale}/* "$ROOT"/var/cache/apt/*.bin \
    "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log \
    "$ROOT"/tmp/* "$ROOT"/var/tmp/*

tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap $SUITE minbase + $PACKAGES from $MIRROR, host CA bundle" \
    - "$TAG" >&2
echo "base image built: $TAG ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)" >&2
echo "$TAG"
