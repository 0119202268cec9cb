#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the portal's browser test
# (crates/runner/tests/portal.rs), installed with apt when missing. Idempotent.
# Exits non-zero when they are missing and cannot be installed (no root, no apt); the
# browser test then skips with that reason, unless CROSSOMICS_REQUIRE_BROWSER is set.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "setup-chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1) and chromedriver already installed"
    exit 0
fi
command -v apt-get >/dev/null || { echo "setup-chromium: no apt-get on this machine" >&2; exit 1; }
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup-chromium: not root and no sudo" >&2; exit 1; }
    SUDO="sudo -n"
fi
echo "setup-chromium: installing Debian's chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || true
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || { echo "setup-chromium: installation incomplete" >&2; exit 1; }
echo "setup-chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1) installed"
