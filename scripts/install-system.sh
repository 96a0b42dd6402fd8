#!/usr/bin/env bash
# Installs the Debian packages that some tests need, when they are missing and we are root.
# Tests that need a tool which is still absent skip with a reason.
set -u
packages=(flac chromium chromium-driver espeak-ng)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-system: not root; missing Debian packages (tests that need them will skip): ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "install-system: could not install ${missing[*]}; tests that need them will skip" >&2
exit 0
