#!/usr/bin/env bash
# Set up SiteGuard on a fresh Debian machine. The Dockerfile runs these same steps.
#
#   scripts/install.sh system            # Debian packages the tests and demo use (needs root)
#   scripts/install.sh python [EXTRAS]   # .venv with the package installed editable, e.g. "dev,train"
#   scripts/install.sh deps [EXTRAS]     # only the dependencies pyproject.toml declares (the
#                                        # Dockerfile's cached layer: needs no source, only pyproject)
#
# Both steps are idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SITEGUARD_VENV:-.venv}
# gst-rtsp-server + GStreamer (x264/x265): the real RTSP camera of tests/detector/test_rtsp.py,
# run by Debian's /usr/bin/python3 (python3-gi).
SYSTEM_PACKAGES=(postgresql chromium prometheus fonts-noto-cjk
    gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
# docker.io, docker-compose, debootstrap: tests/ops/test_containers.py builds and runs the images
# (issue 16); its fixture starts dockerd when it is installed but not running.
SYSTEM_PACKAGES+=(docker.io docker-compose debootstrap)

install_system() {
    local missing=()
    for pkg in "${SYSTEM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "system packages present: ${SYSTEM_PACKAGES[*]}"
        return
    fi
    echo "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_python() {
    local extras=${1:-}
    local spec="."
    [ -z "$extras" ] || spec=".[$extras]"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    local stamp="$VENV/.siteguard-installed"
    local want
    want="$extras $(sha256sum pyproject.toml | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "python environment up to date ($VENV, extras: ${extras:-none})"
        return
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$spec"
    headless_opencv
    echo "$want" > "$stamp"
}

headless_opencv() {
    # trackers requires opencv-python, the GUI build (X11 + OpenGL libraries), whose cv2/ files
    # overwrite opencv-python-headless's; on a box without X (the edge image) `import cv2` then
    # fails on libxcb. Put the headless files back unless cv2's library already is the headless
    # one (its RECORD hash); a no-op where only one of the two is installed.
    "$VENV/bin/python" - <<'PY' && return 0
import base64, hashlib, importlib.metadata as m, sys
try:
    m.version("opencv-python")
    files = m.distribution("opencv-python-headless").files or []
except m.PackageNotFoundError:
    sys.exit(0)
for f in files:
    if f.name.startswith("cv2") and f.name.endswith(".so") and f.hash:
        digest = hashlib.sha256(f.locate().read_bytes()).digest()
        sys.exit(base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != f.hash.value)
sys.exit(1)
PY
    local version
    version=$("$VENV/bin/python" -c 'import importlib.metadata as m
print(m.version("opencv-python-headless"))')
    "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "opencv-python-headless==$version"
}

install_deps() {
    # pyproject.toml's dependencies (+ the extras'), without the package: a docker layer that only
    # a pyproject change invalidates. `python` then installs the package itself over them.
    local extras=${1:-}
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    mapfile -t reqs < <(EXTRAS="$extras" "$VENV/bin/python" - <<'PY'
import os, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(project["dependencies"])
for extra in filter(None, os.environ["EXTRAS"].split(",")):
    reqs += project["optional-dependencies"][extra]
print("\n".join(reqs))
PY
    )
    "$VENV/bin/python" -m pip install -q "${reqs[@]}"
    headless_opencv
}

case "${1:-}" in
    system) install_system ;;
    python) install_python "${2:-}" ;;
    deps) install_deps "${2:-}" ;;
    *) echo "usage: $0 system | python [EXTRAS] | deps [EXTRAS]" >&2; exit 2 ;;
esac
