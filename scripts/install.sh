#!/usr/bin/env bash
# Set up SiteGuard on a fresh Debian machine. The Dockerfile runs these same steps.
#
#   scripts/install.sh system            # Debian packages the tests and demo use (needs root)
#   scripts/install.sh python [EXTRAS]   # .venv with the package installed editable, e.g. "dev,train"
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
    echo "$want" > "$stamp"
}

case "${1:-}" in
    system) install_system ;;
    python) install_python "${2:-}" ;;
    *) echo "usage: $0 system | python [EXTRAS]" >&2; exit 2 ;;
esac
