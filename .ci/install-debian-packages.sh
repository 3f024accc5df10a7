#!/bin/sh
# Install the Debian packages the test suite needs beyond Python: Chromium, which
# the report test uses to render the backtest report headless. Does nothing when
# Chromium is already installed; otherwise needs root and the Debian mirrors.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing: run 'apt-get install -y chromium' as root" >&2
    exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
