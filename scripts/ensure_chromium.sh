#!/usr/bin/env bash
# Headless Chromium for the tests that open `embedserve map` pages (Debian's package;
# playwright drives it, so no browser download). Installs it when missing and apt-get can
# run (CI runs as root on Debian); otherwise says so and leaves the tests to skip.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "chromium is missing and cannot be installed here (needs root and apt-get)" >&2
fi
