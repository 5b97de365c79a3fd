#!/bin/sh
# Installs Debian's PostgreSQL server when it is missing, for the tests
# (internal/testenv starts a throwaway cluster from /usr/lib/postgresql/*/bin
# in a temporary directory). Needs root or sudo; does nothing when installed.
set -eu

installed() {
	for f in /usr/lib/postgresql/*/bin/initdb; do
		[ -x "$f" ] && [ -x "${f%/initdb}/postgres" ] && { echo "${f%/bin/initdb}"; return 0; }
	done
	return 1
}

if dir=$(installed); then
	echo "postgres.sh: PostgreSQL $(basename "$dir") is installed"
	exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "postgres.sh: run as root (apt-get install postgresql)" >&2; exit 1; }
	sudo=sudo
fi
echo "postgres.sh: installing postgresql with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends postgresql
dir=$(installed) || { echo "postgres.sh: postgresql installed but no /usr/lib/postgresql/*/bin/initdb" >&2; exit 1; }
echo "postgres.sh: PostgreSQL $(basename "$dir") installed"
