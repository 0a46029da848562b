#!/usr/bin/env bash
# The main job on the local lab: a local PostgreSQL, the dry-run plan a reviewer reads, then the run.
# Installs what it needs on a fresh Debian machine (PostgreSQL as root, npm packages).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "demo: PostgreSQL 15 is not installed; run as root or: sudo apt-get install postgresql-15" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build

pgrunbook() { node bin/pgrunbook.js "$@"; }
pgrunbook lab up
inv=.pgrunbook/lab/inventory.yml
echo
echo "== validate =="
pgrunbook validate examples/lab-demo.yml -i "$inv"
echo
echo "== plan (dry run, facts checked read-only) =="
pgrunbook plan examples/lab-demo.yml -i "$inv" --check
echo
echo "== run =="
pgrunbook run examples/lab-demo.yml -i "$inv" --report .pgrunbook/lab/last-report.md
echo
echo "Report: .pgrunbook/lab/last-report.md   Stop the lab: node bin/pgrunbook.js lab down"
