#!/bin/sh
# The documented in-place major upgrade of a Patroni cluster, typed as a DBA would: the floor that
# bench/upgrade-downtime.ts holds pg-major-upgrade.yml to. No checks beyond what the procedure
# needs to be correct, no journal, no undo. Runs as the PostgreSQL OS user on the leader's host,
# with every member's files reachable locally and the replicas reached by rsync over $RSYNC_SSH.
#
# Environment (all required):
#   OLD_BIN, NEW_BIN      the two majors' bin directories
#   NEW_NAME              the new data directory's name, beside the old one on every member
#   SCOPE                 the Patroni cluster; LEADER_NAME its leader; PATRONI_URL the leader's REST API
#   JOBS                  pg_upgrade --jobs
#   RSYNC_SSH             the ssh command rsync uses to reach the replicas (host 127.0.0.1 here)
#   LEADER                "datadir|patroni.yml|service script|port|socket dir|REST URL"
#   REPLICAS              one such line per replica
# Optional: PGB_PORT (a PgBouncer on 127.0.0.1 in front of the leader), PGB_USER and PGB_PASSWORD
# for its admin console: paused for the window and resumed once the new leader takes writes.
# Prints "phase NAME EPOCH_SECONDS" at each phase boundary, for the benchmark's breakdown.
set -eu

phase() { echo "phase $1 $(date +%s.%N)"; }
field() { echo "$1" | cut -d'|' -f"$2"; }

L_DATA=$(field "$LEADER" 1); L_CONF=$(field "$LEADER" 2); L_SVC=$(field "$LEADER" 3)
L_PORT=$(field "$LEADER" 4); L_SOCK=$(field "$LEADER" 5)
L_NEW=$(dirname "$L_DATA")/$NEW_NAME
WORK=$(dirname "$L_DATA")/upgrade-work
mkdir -p "$WORK"
psql_l() { "$OLD_BIN/psql" -X -At -h "$L_SOCK" -p "$L_PORT" -U postgres -d postgres -c "$1"; }

# Before the window: the new cluster made like the old, checked against the running old one, and
# patroni.yml for the new major prepared on every member.
phase prepare
ENC=$(psql_l "select pg_encoding_to_char(encoding) from pg_database where datname = 'template1'")
COLL=$(psql_l "select datcollate from pg_database where datname = 'template1'")
CTYPE=$(psql_l "select datctype from pg_database where datname = 'template1'")
SUPER=$(psql_l "select rolname from pg_authid where oid = 10")
SUMS=$(psql_l "show data_checksums")
set -- --encoding="$ENC" --lc-collate="$COLL" --lc-ctype="$CTYPE" -U "$SUPER"
[ "$SUMS" = on ] && set -- "$@" --data-checksums
"$NEW_BIN/initdb" -D "$L_NEW" "$@" >/dev/null
cd "$WORK"
upgrade() {
  "$NEW_BIN/pg_upgrade" -b "$OLD_BIN" -B "$NEW_BIN" -d "$L_DATA" -D "$L_NEW" -U "$SUPER" \
    -p "$L_PORT" -P 50432 -s "$WORK" -j "$JOBS" "$@"
}
upgrade --check >/dev/null
newconf() { sed -e "s#^\( *data_dir:\).*#\1 $(dirname "$2")/$NEW_NAME#" -e "s#^\( *bin_dir:\).*#\1 $NEW_BIN#" "$1" >"$1.new"; }
newconf "$L_CONF" "$L_DATA"
echo "$REPLICAS" | while IFS= read -r r; do [ -n "$r" ] && newconf "$(field "$r" 2)" "$(field "$r" 1)"; done
# Paused, Patroni leaves PostgreSQL running when it stops: the writes go on until the leader stops.
curl -fsS -X PATCH -d '{"pause": true}' "$PATRONI_URL/config" >/dev/null
# As `patronictl pause --wait`: every member must have seen it, or stopping its Patroni stops PostgreSQL.
paused() { curl -fsS "$1/patroni" 2>/dev/null | grep -q '"pause": *true'; }
for u in "$PATRONI_URL" $(echo "$REPLICAS" | cut -d'|' -f6); do
  until paused "$u"; do sleep 0.2; done
done
"$L_SVC" stop
echo "$REPLICAS" | while IFS= read -r r; do [ -n "$r" ] && "$(field "$r" 3)" stop; done

# Clients of the pooler wait from here instead of failing (PAUSE returns once their transactions end).
bouncer() { [ -z "${PGB_PORT:-}" ] || PGPASSWORD="$PGB_PASSWORD" "$NEW_BIN/psql" -X -q -h 127.0.0.1 -p "$PGB_PORT" -U "$PGB_USER" -d pgbouncer -c "$1" >/dev/null; }
bouncer PAUSE

# The window: writes stop with the leader.
phase stop_leader
"$OLD_BIN/pg_ctl" -D "$L_DATA" stop -m fast -w >/dev/null
CKPT=$("$OLD_BIN/pg_controldata" "$L_DATA" | sed -n 's/^Latest checkpoint location: *//p')
phase stop_replicas
echo "$REPLICAS" | while IFS= read -r r; do
  [ -n "$r" ] || continue
  d=$(field "$r" 1)
  # A replica is stopped once it has replayed the leader's shutdown checkpoint, so that both hold
  # the same WAL end (the pg_upgrade documentation's check, done before rather than after).
  until "$OLD_BIN/psql" -X -At -h "$(field "$r" 5)" -p "$(field "$r" 4)" -U postgres -d postgres \
    -c "select pg_last_wal_replay_lsn() > '$CKPT'::pg_lsn" | grep -q t; do sleep 0.05; done
  "$OLD_BIN/pg_ctl" -D "$d" stop -m fast -w >/dev/null
  got=$("$OLD_BIN/pg_controldata" "$d" | sed -n 's/^Latest checkpoint location: *//p')
  [ "$got" = "$CKPT" ] || { echo "replica $d stopped at $got, the leader at $CKPT" >&2; exit 1; }
done
phase pg_upgrade
upgrade --link >/dev/null
phase rsync
cd "$(dirname "$L_DATA")"
echo "$REPLICAS" | while IFS= read -r r; do
  [ -n "$r" ] || continue
  d=$(field "$r" 1)
  rsync --archive --delete --hard-links --size-only --no-inc-recursive -e "$RSYNC_SSH" \
    "$(basename "$L_DATA")" "$NEW_NAME" "127.0.0.1:$(dirname "$d")"
done
phase dcs_reset
# The new cluster has a new system identifier: Patroni must start from an empty DCS.
# Patroni was stopped while paused, so the member keys still say running until their ttl: patronictl
# then asks for the leader's name as well, which the DBA gives knowing every Patroni is stopped.
printf '%s\nYes I am aware\n%s\n' "$SCOPE" "$LEADER_NAME" | patronictl -c "$L_CONF" remove "$SCOPE" >/dev/null
phase start_leader
mv "$L_CONF.new" "$L_CONF"
"$L_SVC" start >/dev/null
until "$NEW_BIN/psql" -X -At -h "$L_SOCK" -p "$L_PORT" -U postgres -d postgres \
  -c "select not pg_is_in_recovery()" 2>/dev/null | grep -q t; do sleep 0.1; done
phase after_window
bouncer RESUME
echo "$REPLICAS" | while IFS= read -r r; do
  [ -n "$r" ] || continue
  mv "$(field "$r" 2).new" "$(field "$r" 2)"
  "$(field "$r" 3)" start >/dev/null
done
# After the window: statistics.
"$NEW_BIN/vacuumdb" -h "$L_SOCK" -p "$L_PORT" -U "$SUPER" --all --analyze-in-stages -j "$JOBS" >/dev/null 2>&1
phase done
