#!/bin/bash
# pg_drill.sh - the PostgreSQL verified-restore drill, for real: a source
# cluster with pgbench data and a text/bytea table, a baseline taken in the
# dump's own snapshot, custom, directory and plain dumps in a store, an
# index; scripts/pg-drill restores each through a private vbfs mount into a
# throwaway cluster and validates it.  Then one flipped bit in the custom
# dump must fail the drill (exit 1) naming the file, block and offset, and
# a dump the drill user may not read (as indexed) is a setup error (exit 2).
# Installs PostgreSQL (Debian package) when missing.
. "$(dirname "$0")/lib.sh"
SRC=${VBFS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DRILL=$SRC/scripts/pg-drill
BASELINE=$SRC/scripts/pg-baseline
SCALE=${PG_DRILL_SCALE:-5}

# ---- PostgreSQL and the drill user --------------------------------------
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	command -v apt-get >/dev/null || skip "PostgreSQL not installed and no apt-get"
	# No default cluster: this box should not start running a server.
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/vbfs-test.conf
	echo "# installing postgresql (apt-get)"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib jq; } >"$T/apt.log" 2>&1
	st=$?
	rm -f /etc/postgresql-common/createcluster.d/vbfs-test.conf
	[ $st = 0 ] || skip "cannot install postgresql: $(tail -n1 "$T/apt.log")"
fi
command -v jq >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null 2>&1 || skip "no jq"; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
U=vbfsdrill
id -u "$U" >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
	--home-dir /nonexistent --shell /usr/sbin/nologin "$U" || skip "cannot create user $U"

# The drill user must pass through $T (lib.sh makes it 0700); the drills'
# own temporary directories go to $T/tmp so that we can see they are gone.
chmod 0711 "$T"
mkdir -p "$T/tmp" && chmod 1777 "$T/tmp"
export TMPDIR=$T/tmp
cd / || exit 1

# ---- the source database ----------------------------------------------
SRCDIR=$T/src
mkdir -p "$SRCDIR/data" "$SRCDIR/sock" && chown "$U": "$SRCDIR/data" "$SRCDIR/sock" && chmod 0700 "$SRCDIR/data" "$SRCDIR/sock"
src_up=0
stop_source() {
	[ "$src_up" = 1 ] || return 0
	runuser -u "$U" -- "$PGBIN/pg_ctl" -D "$SRCDIR/data" -m immediate -w stop >/dev/null 2>&1
	src_up=0
}
trap 'stop_source; cleanup' EXIT
asu() { runuser -u "$U" -- env PGHOST="$SRCDIR/sock" PGUSER=postgres "$@"; }

t_start=$SECONDS
asu "$PGBIN/initdb" -D "$SRCDIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$T/initdb.log" 2>&1 ||
	{ fail "source initdb: $(tail -n1 "$T/initdb.log")"; finish; exit; }
asu "$PGBIN/pg_ctl" -D "$SRCDIR/data" -l "$SRCDIR/data/server.log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$SRCDIR/sock' -c fsync=off -c full_page_writes=off" start >/dev/null ||
	{ fail "source cluster did not start"; finish; exit; }
src_up=1
asu "$PGBIN/createdb" bench
echo "# source cluster up in $((SECONDS - t_start)) s"
asu "$PGBIN/pgbench" -i -s "$SCALE" -q bench >"$T/pgbench.log" 2>&1 || fail "pgbench -i: $(tail -n1 "$T/pgbench.log")"
# text, bytea (incompressible: it keeps the dump tens of MB), NULLs, non-ASCII,
# timestamptz and float (their text depends on session settings).
asu psql -X -q -v ON_ERROR_STOP=1 -d bench >"$T/docs.log" 2>&1 <<'SQL' || fail "docs table: $(head -n1 "$T/docs.log")"
CREATE TABLE docs (
	id      integer PRIMARY KEY,
	title   text NOT NULL,
	body    text,
	blob    bytea,
	created timestamptz NOT NULL,
	score   double precision
);
-- ~24 MB of incompressible bytes (slices of a 1 MiB random pool, far apart
-- so that zlib's 32 KiB window finds no repeats): keeps the dumps tens of MB.
CREATE TEMP TABLE pool AS
	SELECT decode(string_agg(md5(h::text), '' ORDER BY h), 'hex') AS b FROM generate_series(1, 65536) h;
INSERT INTO docs
SELECT g, 'doc ' || g || ' — ünïcode ' || chr(945 + g % 20),
       CASE WHEN g % 10 = 0 THEN NULL ELSE repeat(md5(g::text) || E'\n\t"\\', 1 + g % 40) END,
       substr(pool.b, 1 + (g * 7919) % (1048576 - 8192), 4096 + g % 4096),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '37 minutes',
       g / 7.0
  FROM generate_series(1, 4000) g, pool;
CREATE TABLE tags (doc integer REFERENCES docs, tag text);  -- no primary key
INSERT INTO tags SELECT g % 4000 + 1, 'tag' || g % 17 FROM generate_series(1, 20000) g;
SQL
echo "# pgbench and docs loaded at $((SECONDS - t_start)) s"
asu "$PGBIN/createdb" small
asu psql -X -q -v ON_ERROR_STOP=1 -d small -c \
	"CREATE TABLE notes (id serial PRIMARY KEY, body text, at timestamptz DEFAULT '2026-11-26 12:00+00');
	 INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 1000) g;" >/dev/null || fail "small db"

STORE=$T/store INDEX=$T/index
mkdir -p "$STORE/db" && chmod 0755 "$STORE" "$STORE/db" && chown "$U": "$STORE/db"
# The baseline shares pg_dump's snapshot (pg-baseline -- pg_dump ...).
expect_status "pg-baseline + pg_dump -Fc in one snapshot" 0 \
	asu "$BASELINE" -o "$T/tmp/bench.baseline.json" \
	--check 'balance=SELECT sum(abalance), count(*) FROM pgbench_accounts' \
	--check 'first docs=SELECT id, title, created, score FROM docs ORDER BY id LIMIT 3' \
	bench -- "$PGBIN/pg_dump" -Fc -f "$STORE/db/bench.dump" bench
B=$T/bench.baseline.json
mv "$T/tmp/bench.baseline.json" "$B"
expect_eq "baseline lists 6 tables" \
	"public.docs public.pgbench_accounts public.pgbench_branches public.pgbench_history public.pgbench_tellers public.tags" \
	"$(jq -r '[.tables[].name] | join(" ")' "$B" 2>/dev/null)"
expect_eq "baseline row counts" "4000 $((SCALE * 100000)) 20000" \
	"$(jq -r '[.tables[] | select(.name == "public.docs" or .name == "public.pgbench_accounts" or .name == "public.tags") | .rows] | join(" ")' "$B" 2>/dev/null)"
expect_eq "baseline has an md5 per table plus 2 checks" 8 "$(jq '.checks | length' "$B" 2>/dev/null)"
expect_eq "baseline md5 of accounts is in primary-key order" 1 \
	"$(jq '[.checks[] | select(.name == "md5 public.pgbench_accounts") | .query | select(test("ORDER BY _vbfs_r.aid"))] | length' "$B" 2>/dev/null)"
asu "$PGBIN/pg_dump" -Fd -f "$STORE/db/bench.dir" bench || fail "pg_dump -Fd"
asu "$PGBIN/pg_dump" -Fp -f "$STORE/db/small.sql" small || fail "pg_dump -Fp"
asu "$BASELINE" -o "$T/tmp/small.json" small 2>/dev/null && mv "$T/tmp/small.json" "$T/small.json" || fail "small baseline"
# A dump only root may read: the drill user must be refused by the mount.
cp "$STORE/db/small.sql" "$STORE/db/secret.sql" && chown root:root "$STORE/db/secret.sql" && chmod 0600 "$STORE/db/secret.sql"
stop_source
size=$(stat -c %s "$STORE/db/bench.dump")
echo "# source ready in $((SECONDS - t_start)) s; custom dump $((size / 1048576)) MiB, directory dump $(du -sm "$STORE/db/bench.dir" | cut -f1) MiB"
[ "$size" -gt $((10 * 1048576)) ] || fail "custom dump is only $size bytes (want tens of MB)"

expect_status "vbfsctl build" 0 "$VBFSCTL" build "$STORE" "$INDEX"

# ---- the drills -------------------------------------------------------------
export VBFSCTL VBFS_BIN
H=$T/history.jsonl
drill() { "$DRILL" --vbfsctl "$VBFSCTL" --target 10m --history "$H" "$@"; }

t=$SECONDS
expect_status "drill: custom dump restores and validates" 0 drill --json --baseline "$B" "$STORE" "$INDEX" db/bench.dump
cp "$T/last.out" "$T/custom.json"
echo "# custom drill: $((SECONDS - t)) s"
expect_eq "custom: ok, format, no damage" "true custom 0" \
	"$(jq -r '"\(.ok) \(.format) \(.damage | length)"' "$T/custom.json" 2>/dev/null)"
expect_eq "custom: all 20 validation tests passed" "20 0" \
	"$(jq -r '"\(.validation.passed) \(.validation.failed)"' "$T/custom.json" 2>/dev/null)"
expect_eq "custom: rto timed mount, restore, validate; target met" "mount restore validate true" \
	"$(jq -r '"\(.rto.phases | keys_unsorted | join(" ")) \(.rto.met)"' "$T/custom.json" 2>/dev/null)"
expect_eq "custom: the baseline md5 equals the restored one" \
	"$(jq -r '.checks[] | select(.name == "md5 public.docs") | .expect' "$B")" \
	"$(jq -r '.validation.results[] | select(.test == "check md5 public.docs") | .actual' "$T/custom.json" 2>/dev/null)"

t=$SECONDS
expect_status "drill: directory dump restores and validates" 0 drill --baseline "$B" "$STORE" "$INDEX" db/bench.dir
echo "# directory drill: $((SECONDS - t)) s"
check "directory: report says PASS" grep -q '^pg-drill: PASS db/bench.dir (directory)' "$T/last.out"
check "directory: report says 20 of 20" grep -q 'validation: 20 of 20 tests passed' "$T/last.out"

expect_status "drill: plain SQL dump restores and validates" 0 drill --baseline "$T/small.json" "$STORE" "$INDEX" "$STORE/db/small.sql"
check "plain: report says PASS (plain)" grep -q '^pg-drill: PASS db/small.sql (plain)' "$T/last.out"

# A restore that does not match its baseline fails validation.
jq '(.tables[] | select(.name == "public.notes") | .rows) = 999' "$T/small.json" >"$T/small-wrong.json"
expect_status "drill: validation mismatch fails" 1 drill --baseline "$T/small-wrong.json" "$STORE" "$INDEX" db/small.sql
check "mismatch: named in the report" grep -q 'mismatch: rows public.notes: expected 999 rows (tolerance 0), got 1000' "$T/last.out"

expect_status "drill: a dump the drill user may not read is a setup error" 2 drill "$STORE" "$INDEX" db/secret.sql
check "unreadable: names the mode and owner as indexed" \
	grep -q '^  error: db/secret.sql is not readable by user vbfsdrill: it is -rw------- root:root as indexed$' "$T/last.out"
expect_status "drill: a dump not in the index is a setup error" 2 drill "$STORE" "$INDEX" db/nosuch.dump
check "not indexed: says so" grep -q 'db/nosuch.dump is not in the index' "$T/last.out"
expect_status "drill: bad usage" 2 "$DRILL" "$STORE" "$INDEX"
expect_status "drill: a baseline that is not one" 2 drill --baseline "$STORE/db/small.sql" "$STORE" "$INDEX" db/small.sql

# ---- one flipped bit in the custom dump ----------------------------------
BAD=$T/bad
cp -a "$STORE" "$BAD"
off=$((size / 2))
blk=$((off / 1048576))
byte=$(od -An -tu1 -j "$off" -N1 "$BAD/db/bench.dump" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 0x10)))" | dd of="$BAD/db/bench.dump" bs=1 seek="$off" conv=notrunc status=none
check "the bit is flipped" test "$(cmp "$STORE/db/bench.dump" "$BAD/db/bench.dump" | wc -l)" = 1

t=$SECONDS
expect_status "drill: damaged custom dump fails" 1 drill --json --baseline "$B" "$BAD" "$INDEX" db/bench.dump
echo "# damaged drill: $((SECONDS - t)) s"
expect_eq "damaged --json: the event" "corrupt db/bench.dump $blk $((blk * 1048576))" \
	"$(jq -r '.damage[0] | "\(.event) \(.path) \(.block) \(.offset)"' "$T/last.out" 2>/dev/null)"
expect_eq "damaged --json: failed in restore, not validated" "false 1 restore null" \
	"$(jq -r '"\(.ok) \(.exit) \(.rto.failed_phase) \(.validation)"' "$T/last.out" 2>/dev/null)"
check "damaged: report says FAIL" grep -q '^pg-drill: FAIL db/bench.dump' "$T/last.err"
check "damaged: report names file, block and offset" \
	grep -q "damaged: db/bench.dump block $blk at byte offset $((blk * 1048576)) (corrupt)" "$T/last.err"
check "damaged: pg_restore saw the I/O error" grep -q 'restore: pg_restore: error: .*Input/output error' "$T/last.err"
grep -A6 '^pg-drill: FAIL' "$T/last.err" | sed 's/^/#   /'

# ---- history, and nothing left behind ----------------------------------------
# custom, directory, plain met; mismatch, unreadable, not indexed, damaged did not.
expect_eq "history: one line per drill that ran" "true true true false false false false" \
	"$(jq -rs '[.[] | .met] | join(" ")' "$H" 2>/dev/null)"
# ---- the same flipped bit, healed from a replica and from parity ------------
# The restore completes and validates; the damage is still reported (exit 1).
expect_status "drill --replica: the damaged dump restores and validates" 1 \
	drill --json --baseline "$B" --replica "$STORE" "$BAD" "$INDEX" db/bench.dump
expect_eq "healed from the replica: validated, damage reported, 1 block healed" "true restore-ok 1 1" \
	"$(jq -r '"\(.validation.ok // .validation) \(if .rto.failed_phase == null then "restore-ok" else .rto.failed_phase end) \(.damage | length) \(.rto.healed)"' "$T/last.out" 2>/dev/null)"
check "healed: the report says so" grep -q "restored, 1 block healed: 1 from replica:$(realpath "$STORE")" "$T/last.err"
"$VBFSCTL" build "$STORE" "$T/pindex" --parity 8+2 --parity-dir "$T/parity" >/dev/null 2>&1
expect_status "drill --parity: the damaged dump restores and validates" 1 \
	drill --json --baseline "$B" --parity "$T/parity" "$BAD" "$T/pindex" db/bench.dump
expect_eq "healed from parity: validated, 1 block healed" "restore-ok 1" \
	"$(jq -r '"\(if .rto.failed_phase == null then "restore-ok" else .rto.failed_phase end) \(.rto.healed)"' "$T/last.out" 2>/dev/null)"
expect_eq "no temporary directories left" "" "$(ls -A "$T/tmp")"
# (from /proc: procps may not be installed)
cmdlines() { local f; for f in /proc/[0-9]*/cmdline; do { tr '\0' ' ' <"$f"; } 2>/dev/null; echo; done; }
no_server_left() { ! cmdlines | grep -q -- "-D $T/tm[p]/"; }  # [p]: not grep itself
no_mount_left() { ! grep -q " $T/tmp/" /proc/mounts; }
check "no drill server left running" no_server_left
check "no mount left" no_mount_left
echo "# total $((SECONDS - t_start)) s"
finish
