#!/usr/bin/env bash
# Installs the Debian 12 packages Hydra builds and tests with, when any is missing.
set -euo pipefail
PACKAGES=(
  libxnnpack-dev libpthreadpool-dev libuv1-dev libhttp-parser-dev libturbojpeg0-dev libpng-dev zlib1g-dev
  python3-torch python3-numpy python3-opencv python3-pil python3-pytest python3-open3d python3-venv
  chromium chromium-driver python3-selenium kubectl python3-yaml hey
  eslint tidy python3-tinycss2
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v swift >/dev/null || { echo "setup: Swift 5.9 or newer must be on PATH (https://swift.org/install)"; exit 1; }
