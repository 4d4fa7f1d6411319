#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver for the browser test (tests/browser/).
# Also installs a small CJK font so screenshots show the zh-TW labels instead of empty boxes.
# Needs root (or sudo) and a Debian or Ubuntu package source; nothing else is downloaded.
set -euo pipefail

packages=(chromium chromium-driver fonts-wqy-microhei)

if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list 2>/dev/null | grep -qi wqy; then
    echo "install-browser: chromium, chromedriver and the CJK font are already installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "install-browser: need root or sudo to install ${packages[*]}; the browser test will be skipped" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q "${packages[@]}"
chromium --version
chromedriver --version
