#!/bin/sh
# Install the Debian packages the test suite needs beyond Python: Chromium, which
# the report test uses to render the backtest report headless, and Prometheus
# (prometheus and promtool), which the rules check and the scrape test run.
# Installs only what is missing; that needs root and the Debian mirrors.
set -eu

missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
{ [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || missing="$missing prometheus"

if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing: run 'apt-get install -y$missing' as root" >&2
    exit 1
fi
apt-get update
# $missing is a list of package names, split on purpose.
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
