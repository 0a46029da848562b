#!/usr/bin/env bash
# The main job on the local lab: start a local PostgreSQL with archiving (Debian's binaries if
# installed, else the embedded ones from npm — no root, no apt), take a snapshot backup while a
# writer commits rows, prove it restores, and print a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build

pgrunbook() { node bin/pgrunbook.js "$@"; }
pgrunbook lab up
echo
echo "== the dry-run plan a reviewer reads (facts checked read-only) =="
pgrunbook plan playbooks/snapshot-backup.yml -i .pgrunbook/lab/inventory.yml --check
echo
echo "== the run =="
pgrunbook lab demo
echo "Stop the lab: node bin/pgrunbook.js lab down"
