#!/usr/bin/env bash
# Installs the Debian packages that some tests need, when they are missing and we are root.
# Tests that need a tool which is still absent skip with a reason, unless
# MURMURLM_REQUIRE_SYSTEM_TOOLS=1 (set by .ci/run): then this script fails, naming what is missing.
set -u
packages=(flac chromium chromium-driver espeak-ng)
tools=(flac chromium chromedriver espeak-ng)
have_all() { for t in "${tools[@]}"; do command -v "$t" >/dev/null 2>&1 || return 1; done; }
missing_tools() { for t in "${tools[@]}"; do command -v "$t" >/dev/null 2>&1 || printf '%s ' "$t"; done; }
have_all && exit 0
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "$(id -u)" = 0 ] && [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "install-system: apt-get could not install ${missing[*]}" >&2
fi
have_all && exit 0
if [ "${MURMURLM_REQUIRE_SYSTEM_TOOLS:-}" = 1 ]; then
  echo "install-system: FAILED: missing $(missing_tools)(Debian packages ${packages[*]}); MURMURLM_REQUIRE_SYSTEM_TOOLS=1 requires them" >&2
  exit 1
fi
echo "install-system: missing $(missing_tools)(not root, or apt failed); tests that need them will skip" >&2
exit 0
