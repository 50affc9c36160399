#!/bin/bash
# interop_pg.sh - a real pg_basebackup --manifest-checksums=SHA256 of a
# throwaway cluster anchors a vbfs index, and pg_verifybackup and vbfs agree
# about a damaged copy and about an edited manifest.  The cluster runs as the
# unprivileged postgres user, on a Unix socket in the test's own directory
# only (no TCP), and is stopped on every path.
. "$(dirname "$0")/lib.sh"

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_basebackup" ] && [ -x "$PGBIN/pg_verifybackup" ] \
	|| skip "PostgreSQL server binaries not installed (apt-get install postgresql)"
id postgres >/dev/null 2>&1 || skip "no postgres user"
PY=$(command -v python3) || skip "python3 not installed"

PGUSER_OS=postgres
PGD=$T/pgdata SOCK=$T/sock PORT=$((50000 + $$ % 10000))
as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
pg_stop() {
	[ -f "$PGD/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGD" -m immediate -w stop >/dev/null 2>&1
	return 0
}
trap 'pg_stop; cleanup' EXIT

chmod 711 "$T"                       # the postgres user must reach its directories
mkdir -p "$PGD" "$SOCK" "$T/bk"
chown "$PGUSER_OS" "$PGD" "$SOCK" "$T/bk"
chmod 700 "$PGD"

as_pg "$PGBIN/initdb" -D "$PGD" -U postgres --auth=trust --no-sync >"$T/initdb.log" 2>&1 \
	|| { cat "$T/initdb.log" >&2; fail "initdb"; finish; exit 1; }
expect_status "start a throwaway cluster (socket only)" 0 as_pg "$PGBIN/pg_ctl" -D "$PGD" -w -l "$PGD/log" \
	-o "-c listen_addresses='' -k $SOCK -p $PORT -c fsync=off" start
PGH=(-h "$SOCK" -p "$PORT" -U postgres)
expect_status "load some data (pgbench -i)" 0 as_pg "$PGBIN/pgbench" "${PGH[@]}" -i -s 2 -q postgres

BK=$T/bk/sha256 BKC=$T/bk/crc
expect_status "pg_basebackup --manifest-checksums=SHA256" 0 as_pg "$PGBIN/pg_basebackup" "${PGH[@]}" \
	-D "$BK" -c fast -X fetch --no-sync --manifest-checksums=SHA256
expect_status "pg_basebackup with the default CRC32C manifest" 0 as_pg "$PGBIN/pg_basebackup" "${PGH[@]}" \
	-D "$BKC" -c fast -X fetch --no-sync
pg_stop

NLISTED=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["Files"]))' "$BK/backup_manifest")
expect_status "pg_verifybackup: the backup is good" 0 "$PGBIN/pg_verifybackup" "$BK"

# --- the SHA256 manifest anchors the index --------------------------------------
expect_status "build --against backup_manifest" 0 "$VBFSCTL" build "$BK" "$T/idx" --against "$BK/backup_manifest" --json
cp "$T/last.out" "$T/good.json"
"$PY" - "$T/good.json" "$NLISTED" >"$T/good.txt" 2>&1 <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))["against"]
n = int(sys.argv[2])
assert a["listed"] == n and a["mismatched"] == 0 and a["missing"] == 0 and a["uncheckable"] == 0, (a, n)
print("ok")
EOF
expect_eq "every manifest file checked, none differ ($NLISTED listed)" ok "$(cat "$T/good.txt")"

# --- CRC32C manifests: loaded, reported not checkable, never silently passed ----
expect_status "build --against a CRC32C backup_manifest" 0 "$VBFSCTL" build "$BKC" "$T/idx-crc" \
	--against "$BKC/backup_manifest" --json
"$PY" - "$T/last.out" >"$T/crc.txt" 2>&1 <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))["against"]
assert a["uncheckable"] == a["listed"] > 0 and a["mismatched"] == 0, a
print("ok")
EOF
expect_eq "CRC32C files are counted as not checkable" ok "$(cat "$T/crc.txt")"
check "and the build says so" grep -qi "not checkable" "$T/last.err"

# --- damage a copy: both tools name the same file -----------------------------
BAD=$T/bk/damaged
cp -a "$BK" "$BAD"
VICTIM=$(cd "$BAD" && find base -type f -size +1M -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$VICTIM" ] || fail "found a relation file over 1 MiB"
printf '\xff\xff' | dd of="$BAD/$VICTIM" bs=1 seek=1234567 conv=notrunc 2>/dev/null
expect_status "pg_verifybackup: the damaged copy fails" 1 "$PGBIN/pg_verifybackup" "$BAD"
check "pg_verifybackup names $VICTIM" grep -q "checksum mismatch for file \"$VICTIM\"" "$T/last.err"
expect_status "vbfs: build --against fails on the damaged copy" 1 "$VBFSCTL" build "$BAD" "$T/idx-bad" \
	--against "$BAD/backup_manifest" --json
"$PY" - "$T/last.out" "$VICTIM" >"$T/bad.txt" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
paths = sorted(e["path"] for e in d["events"] if e["event"] == "corrupt")
assert paths == [sys.argv[2]], paths
assert d["against"]["mismatched"] == 1 and d["ok"] is False, d["against"]
print("ok")
EOF
expect_eq "vbfs names the same file, and only it" ok "$(cat "$T/bad.txt")"

# --- an edited manifest: both refuse it -----------------------------------------
sed -i '0,/"Size": \([0-9]*\)/s//"Size": 1\1/' "$BAD/backup_manifest"
expect_status "pg_verifybackup refuses the edited manifest" 1 "$PGBIN/pg_verifybackup" -n "$BAD"
check "  (manifest checksum mismatch)" grep -q "manifest checksum mismatch" "$T/last.err"
expect_status "vbfs refuses the edited manifest" 2 "$VBFSCTL" build "$BAD" "$T/idx-edit" \
	--against "$BAD/backup_manifest"
check "  (Manifest-Checksum does not match)" grep -q "Manifest-Checksum does not match" "$T/last.err"

# --- the mount refuses what the manifest disowned; pg_verifybackup agrees with the mount --
if vbfs_mount "$BAD" "$T/idx-bad" "$T/mnt"; then
	expect_status "reading $VICTIM through the mount fails" 1 cat "$T/mnt/$VICTIM"
	expect_status "the rest of the base backup reads back byte for byte" 0 \
		diff -r -q -x "$(basename "$VICTIM")" -x backup_manifest "$BK" "$T/mnt"
	vbfs_umount "$T/mnt"
	expect_eq "the mount exits 1 after damage" 1 "$VBFS_STATUS"
else
	fail "mount the anchored index"
fi

finish
