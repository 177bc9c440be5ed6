#!/usr/bin/env bash
# The lab's tests drive the real docker CLI. Debian ships it inside docker.io; install that package
# without letting its daemon start (the lab emulates the engine, no real daemon may run here).
set -euo pipefail
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
