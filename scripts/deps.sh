#!/usr/bin/env bash
# Installs, from Debian's packages, what the build environment and the tests
# run against: runc and busybox-static (buildkitd's runtime and the seed of
# the test registry's busybox image), PostgreSQL (store tests), git,
# Chromium (browser tests of the build pages) and a dockerd (the action's
# container tests start their own).
# Only what is missing is installed; a second run is a no-op.
set -euo pipefail

need=()
command -v runc >/dev/null 2>&1 || need+=(runc)
# The busybox seeded into the test registry must be static (no libc in it).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || need+=(busybox-static)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v git >/dev/null 2>&1 || need+=(git)
# The build pages are tested in a real headless browser.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# A dockerd (Debian's docker.io, or Docker's own packages where they are
# installed, as on GitHub's runners) for the action's container tests.
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
# The images the tests build carry the system's CA certificates.
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)

[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
