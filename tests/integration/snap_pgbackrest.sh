#!/bin/bash
# snap_pgbackrest.sh - full and incremental backups of a real cluster with
# pgBackRest: a repository with a full, a differential and an incremental
# backup and the WAL archive lives in the store; scripts/pgbackrest-drill
# restores the incremental (its whole chain) through a private vbfs mount,
# the cluster recovers with WAL fetched through the mount, and validates
# against a pg-baseline taken before the incremental.  Then one flipped
# byte in a file of the incremental backup, and one in the WAL segment the
# recovery needs, each fail the drill (exit 1) with the file, block and
# offset.  Installs pgbackrest and PostgreSQL (Debian packages) when missing.
. "$(dirname "$0")/lib.sh"
SRC=${VBFS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DRILL=$SRC/scripts/pgbackrest-drill
BASELINE=$SRC/scripts/pg-baseline

# ---- pgBackRest, PostgreSQL and the drill user --------------------------------
need jq
need_postgres pgbackrest
cd / || exit 1

# ---- the source cluster and its backups -----------------------------------------
D=$T/src STORE=$T/store INDEX=$T/index
mkdir -p "$D/data" "$D/sock" "$D/log" "$D/lock" "$D/spool" "$STORE/repo"
chown "$U": "$D/data" "$D/sock" "$D/log" "$D/lock" "$D/spool" "$STORE/repo"
chmod 0700 "$D/data" "$D/sock"
chmod 0755 "$STORE"
cat >"$D/pgbackrest.conf" <<CONF
[global]
repo1-path=$STORE/repo
log-path=$D/log
lock-path=$D/lock
spool-path=$D/spool
log-level-console=warn
start-fast=y
compress-type=lz4
repo1-retention-full=2
process-max=2
[demo]
pg1-path=$D/data
pg1-socket-path=$D/sock
CONF
chmod 0644 "$D/pgbackrest.conf"
src_up=0
stop_source() {
	[ "$src_up" = 1 ] || return 0
	runuser -u "$U" -- "$PGBIN/pg_ctl" -D "$D/data" -m immediate -w stop >/dev/null 2>&1
	src_up=0
}
trap 'stop_source; cleanup' EXIT
asu() { runuser -u "$U" -- env PGHOST="$D/sock" PGUSER=postgres "$@"; }
pgbr() { asu pgbackrest --config="$D/pgbackrest.conf" --stanza=demo "$@"; }

t_start=$SECONDS
asu "$PGBIN/initdb" -D "$D/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$T/initdb.log" 2>&1 ||
	{ fail "source initdb: $(tail -n1 "$T/initdb.log")"; finish; exit; }
asu "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log/server.log" -w -o "-c listen_addresses='' \
-c unix_socket_directories='$D/sock' -c fsync=off -c wal_level=replica -c archive_mode=on \
-c archive_command='pgbackrest --config=$D/pgbackrest.conf --stanza=demo archive-push %p'" start >/dev/null ||
	{ fail "source cluster did not start"; finish; exit; }
src_up=1
expect_status "stanza-create" 0 pgbr stanza-create
asu "$PGBIN/createdb" bench
asu "$PGBIN/pgbench" -i -s 2 -q bench >"$T/pgbench.log" 2>&1 || fail "pgbench -i: $(tail -n1 "$T/pgbench.log")"
expect_status "full backup" 0 pgbr --type=full backup
asu "$PGBIN/pgbench" -t 300 -c 2 bench >/dev/null 2>&1 || fail "pgbench run 1"
expect_status "differential backup" 0 pgbr --type=diff backup
asu "$PGBIN/pgbench" -t 300 -c 2 bench >/dev/null 2>&1 || fail "pgbench run 2"
asu psql -X -q -d bench -c "CREATE TABLE after_diff (id int PRIMARY KEY, note text);
	INSERT INTO after_diff SELECT g, 'row ' || g FROM generate_series(1, 5000) g;" || fail "after_diff"
# The baseline: the database as the incremental backup will hold it.
asu "$BASELINE" -o "$T/tmp/base.json" --check 'balance=SELECT sum(abalance), count(*) FROM pgbench_accounts' \
	bench 2>/dev/null && mv "$T/tmp/base.json" "$T/base.json" || fail "pg-baseline"
expect_status "incremental backup" 0 pgbr --type=incr backup
pgbr info --output=json >"$T/info.json" 2>/dev/null
stop_source
expect_eq "the repository holds a full, a diff and an incr backup" "full diff incr" \
	"$(jq -r '[.[0].backup[].type] | join(" ")' "$T/info.json")"
INCR=$(jq -r '.[0].backup[-1].label' "$T/info.json")
echo "# source, backups and baseline ready in $((SECONDS - t_start)) s; repository $(du -sm "$STORE/repo" | cut -f1) MiB"
expect_status "vbfsctl build (64 KiB blocks)" 0 "$VBFSCTL" build "$STORE" "$INDEX" --block-size 64K

# ---- the drill ---------------------------------------------------------------------
export VBFSCTL VBFS_BIN
H=$T/history.jsonl
drill() { "$DRILL" --vbfsctl "$VBFSCTL" --target 10m --history "$H" --metrics "$T/drill.prom" "$@"; }
t=$SECONDS
expect_status "drill: full + diff + incr restored, recovered, validated" 0 \
	drill --json --baseline "$T/base.json" "$STORE" "$INDEX" repo
cp "$T/last.out" "$T/ok.json"
echo "# drill: $((SECONDS - t)) s"
expect_eq "ok, stanza, the incremental's set, no damage" "true demo $INCR 0" \
	"$(jq -r '"\(.ok) \(.stanza) \(.set) \(.damage | length)"' "$T/ok.json")"
expect_eq "validation: 5 tables' presence and rows, 5 md5s, the balance" "16 0" \
	"$(jq -r '"\(.validation.passed) \(.validation.failed)"' "$T/ok.json")"
expect_eq "the rows added after the diff are back" "ok" \
	"$(jq -r '.validation.results[] | select(.test == "rows public.after_diff") | if .ok then "ok" else .message end' "$T/ok.json")"
expect_eq "rto phases; verdict met" "mount restore validate met" \
	"$(jq -r '"\(.rto.phases | keys_unsorted | join(" ")) \(.rto.verdict)"' "$T/ok.json")"
check "metrics written" grep -q '^backup_verification_restore_duration_seconds{store=' "$T/drill.prom"
expect_eq "history: one line, met" "1 met" "$(wc -l <"$H") $(tail -n1 "$H" | jq -r .verdict)"
check "the drill's work directory is gone" [ -z "$(ls -A "$T/tmp")" ]

# ---- one flipped byte in a file of the incremental backup ---------------------------------
f=$(cd "$STORE" && find "repo/backup/demo/$INCR/pg_data" -type f -printf '%s %p\n' | sort -n | tail -n1 | cut -d' ' -f2)
off=$(( $(stat -c %s "$STORE/$f") / 2 ))
block=$((off / 65536))
cp "$STORE/$f" "$T/saved"
flip_byte "$STORE/$f" "$off"
expect_status "drill with a damaged incremental file: exit 1" 1 \
	drill --json --baseline "$T/base.json" "$STORE" "$INDEX" repo
expect_eq "the damage: that file, its block and offset" "corrupt $f $block $((block * 65536))" \
	"$(jq -r '.damage[] | "\(.event) \(.path) \(.block) \(.offset)"' "$T/last.out")"
expect_eq "pgbackrest restore failed" true "$(jq -r '.restore_error | startswith("pgbackrest restore")' "$T/last.out")"
check "the report names it" grep -q "damaged: $f block $block at byte offset $((block * 65536)) (corrupt)" "$T/last.err"
expect_eq "history: damaged" damaged "$(tail -n1 "$H" | jq -r .verdict)"
cp "$T/saved" "$T/saved2" && dd if="$T/saved2" of="$STORE/$f" conv=notrunc status=none

# ---- one flipped byte in the WAL the recovery needs ------------------------------------------
seg=$(jq -r '.[0].backup[-1].archive.start' "$T/info.json")
w=$(cd "$STORE" && find repo/archive/demo -type f -name "$seg-*" | head -n1)
check "the incremental's first WAL segment is archived ($seg)" [ -n "$w" ]
cp "$STORE/$w" "$T/wal.saved"
flip_byte "$STORE/$w" 100
expect_status "drill with a damaged WAL segment: exit 1" 1 \
	drill --json --baseline "$T/base.json" "$STORE" "$INDEX" repo
expect_eq "the damage: the segment, block 0" "corrupt $w 0 0" \
	"$(jq -r '.damage[] | "\(.event) \(.path) \(.block) \(.offset)"' "$T/last.out")"
expect_eq "the restored cluster did not recover" true \
	"$(jq -r '.restore_error | test("did not start|did not finish")' "$T/last.out")"
cp "$T/wal.saved" "$T/wal2" && dd if="$T/wal2" of="$STORE/$w" conv=notrunc status=none

expect_status "drill: bad usage" 2 "$DRILL" "$STORE" "$INDEX"
expect_status "drill: no such stanza" 2 "$DRILL" --vbfsctl "$VBFSCTL" --stanza nope "$STORE" "$INDEX" repo
check "the work directories are gone" [ -z "$(ls -A "$T/tmp")" ]
finish
