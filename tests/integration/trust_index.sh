#!/bin/bash
# trust_index.sh - a signed index cannot be changed under a live mount, a
# crafted data.mdb is one line and exit 2 (never a signal), and an old or
# another backup's signed index can be refused (backup id, maximum age).
#
# Each index is opened as a private copy (manifest/snapshot.c) in $TMPDIR,
# here a directory of this test's own so that the copy can be looked for.
. "$(dirname "$0")/lib.sh"
CRAFT="python3 $(dirname "$0")/craft_mdb.py"
need python3

S=$T/store
mkdir -p "$S/sub"
make_file "$S/big.bin" 3
make_file "$S/sub/small.bin" 1
printf 'hello\n' >"$S/sub/hello.txt"
mkdir -p "$S/many"   # enough entries for LMDB branch pages
for i in $(seq 1 300); do printf '%s\n' "$i" >"$S/many/f$i"; done
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp

expect_status "keygen" 0 "$VBFSCTL" keygen "$T/k.sec" "$T/k.pub"
expect_status "build --sign-key --backup-id nightly-1" 0 "$VBFSCTL" build "$S" "$T/idx" \
	--block-size 4K --sign-key "$T/k.sec" --backup-id nightly-1

# ---- 1. a digest overwritten in place under a live signed mount -------------------
# The attacker can write the index directory, not sign: they change block
# 0's digest of big.bin inside data.mdb (same file, same inode) to match
# bytes they put in the store.  The mount must keep serving the signed
# digests: the new bytes are `corrupt`, EIO.
cp -a "$T/idx" "$T/live"
vbfs_mount "$S" "$T/live" "$T/m" "verify_key=$T/k.pub" && pass "signed mount"
# (an O_TMPFILE shows as DIR/#INODE; the fallback as DIR/vbfs-index.X/data.mdb)
check "the private copy is unnamed, mapped from this test's TMPDIR" \
	grep -qE "$T/tmp/(#[0-9]+|vbfs-index\.[A-Za-z0-9]+/data\.mdb) \(deleted\)" "/proc/$VBFS_PID/maps"
expect_eq "nothing is left in TMPDIR while mounted" "" "$(ls -A "$T/tmp")"
ino_before=$(stat -c %i "$T/live/data.mdb")
python3 - "$T/live/data.mdb" "$S/big.bin" <<'EOF' && pass "block 0's digest rewritten in place" || fail "rewrite digest"
import hashlib, sys
idx, store = sys.argv[1], sys.argv[2]
old = hashlib.sha256(open(store, "rb").read(4096)).digest()
new = hashlib.sha256(b"X" * 4096).digest()
with open(idx, "r+b") as f:
    data = f.read()
    at = data.find(old)
    assert at >= 0 and data.find(old, at + 1) < 0, "digest not found once"
    f.seek(at)
    f.write(new)
EOF
head -c 4096 /dev/zero | tr '\0' X | dd of="$S/big.bin" bs=4096 count=1 conv=notrunc status=none
expect_eq "same data.mdb inode (no rename)" "$ino_before" "$(stat -c %i "$T/live/data.mdb")"
expect_status "verify --verify-key on the changed index: root digest mismatch" 2 \
	"$VBFSCTL" verify "$S" "$T/live" --verify-key "$T/k.pub"
one_line_with "changed index" "root digest mismatch"
if dd if="$T/m/big.bin" of="$T/got" bs=4096 count=1 status=none 2>"$T/dd.err"; then
	fail "the mount served block 0 of big.bin: $(head -c 8 "$T/got" | od -An -c | head -1)"
else
	check "the mount refuses the attacker's bytes with EIO" grep -q "Input/output error" "$T/dd.err"
fi
# (The kernel may retry a failed read once, so one event or more; all of
# them about that block.)
check "corrupt events for big.bin block 0, and nothing else" python3 - "$T/m.log" <<'EOF'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
ok = [e for e in evs if e["event"] == "corrupt" and e["path"] == "big.bin" and e["block"] == 0]
sys.exit(0 if ok and len(ok) == len(evs) else 1)
EOF
cmp -s <(tail -c +4097 "$S/big.bin") <(tail -c +4097 "$T/m/big.bin") && pass "the other blocks still serve" || fail "other blocks"
vbfs_umount "$T/m"
expect_eq "the daemon exits 1: damage seen" 1 "$VBFS_STATUS"
make_file "$S/big.bin" 3   # put the store back

# ---- 3. a crafted data.mdb: exit 2, one line, never a signal --------------------------
# craft_mdb.py edits LMDB's own page and node headers.  Before vbfs opened
# a private copy in a probe, ksize/dsize/lower crashed every tool (SIGBUS).
for action in ksize dsize lower branch garbage truncate; do
	rm -rf "$T/bad"; cp -a "$T/idx" "$T/bad"
	expect_status "craft $action" 0 $CRAFT "$T/bad/data.mdb" "$action"
	expect_status "verify, crafted $action" 2 "$VBFSCTL" verify "$S" "$T/bad"
	one_line_with "verify, crafted $action" "index damaged"
	expect_status "verify --verify-key, crafted $action" 2 "$VBFSCTL" verify "$S" "$T/bad" --verify-key "$T/k.pub"
	one_line_with "verify --verify-key, crafted $action" "index damaged"
	mount_refused "mount, crafted $action" "$S" "$T/bad" "index damaged" "verify_key=$T/k.pub"
	# A build reads the old index before it writes: the same probe first.
	if [ "$action" != truncate ] && [ "$action" != garbage ]; then
		sum_before=$(sha256sum <"$T/bad/data.mdb")
		expect_status "build onto crafted $action" 2 "$VBFSCTL" build "$S" "$T/bad"
		# (a branch pointer past the end is LMDB's own error: one line too)
		one_line_with "build onto crafted $action" "$([ "$action" = branch ] && echo "vbfsctl: build:" || echo "index damaged")"
		expect_eq "build left crafted $action as it was" "$sum_before" "$(sha256sum <"$T/bad/data.mdb")"
	fi
done
# Random changes to page and node headers (seeded): never a signal, a
# refusal is one line.  (Before the probe, 11 of these 40 seeds crashed
# verify with SIGBUS, SIGSEGV or an LMDB assertion's SIGABRT.)
crashed=0 wordy=0
for seed in $(seq 1 40); do
	rm -rf "$T/bad"; cp -a "$T/idx" "$T/bad"
	$CRAFT "$T/bad/data.mdb" "random=$seed" || fail "craft random=$seed"
	timeout 60 "$VBFSCTL" verify "$S" "$T/bad" >/dev/null 2>"$T/last.err"
	rc=$?
	[ "$rc" -le 2 ] || { crashed=$((crashed + 1)); echo "# random=$seed: exit $rc" >&2; }
	[ "$rc" != 2 ] || [ "$(wc -l <"$T/last.err")" = 1 ] || wordy=$((wordy + 1))
done
expect_eq "40 random header changes: no verify died of a signal" 0 "$crashed"
expect_eq "40 random header changes: every refusal one line" 0 "$wordy"
expect_eq "no private copy left behind in TMPDIR" "" "$(ls -A "$T/tmp")"

# The private copy needs room: a TMPDIR that cannot take it is one line.
TMPDIR=$T/no-such-dir expect_status "verify with a missing TMPDIR" 2 "$VBFSCTL" verify "$S" "$T/idx"
one_line_with "missing TMPDIR" "cannot make a private copy of the index in $T/no-such-dir"
mkdir -p "$T/small"
if mount -t tmpfs -o size=16k tmpfs "$T/small" 2>/dev/null; then
	_MOUNTS+=("$T/small")
	TMPDIR=$T/small expect_status "verify with a full TMPDIR" 2 "$VBFSCTL" verify "$S" "$T/idx"
	one_line_with "full TMPDIR" "cannot write a private copy of the index in $T/small"
	expect_eq "and nothing left in it" "" "$(ls -A "$T/small")"
	umount "$T/small"
fi

# ---- 4. replay: another backup's or an old signed index -----------------------------------
cp -a "$T/idx" "$T/old"      # nightly-1, signed with the same key
expect_status "build nightly-2" 0 "$VBFSCTL" build "$S" "$T/idx" --sign-key "$T/k.sec" --backup-id nightly-2
expect_status "verify nightly-2 as nightly-2" 0 "$VBFSCTL" verify "$S" "$T/idx" \
	--verify-key "$T/k.pub" --expect-backup-id nightly-2 --max-age 1h
expect_status "an old signed index still verifies with the key alone" 0 "$VBFSCTL" verify "$S" "$T/old" --verify-key "$T/k.pub"
expect_status "the old index is refused as nightly-2" 2 "$VBFSCTL" verify "$S" "$T/old" \
	--verify-key "$T/k.pub" --expect-backup-id nightly-2
one_line_with "replayed backup id" "index is for backup id 'nightly-1', expected 'nightly-2'"
# export takes the same two checks (it had neither): a replayed index is
# not exported, and --output is not written.
expect_status "export refuses the old index as nightly-2" 2 "$VBFSCTL" export "$T/old" --format blocks \
	--verify-key "$T/k.pub" --expect-backup-id nightly-2 --output "$T/old.blocks"
one_line_with "export: replayed backup id" "index is for backup id 'nightly-1', expected 'nightly-2'"
check "export: nothing written" test ! -e "$T/old.blocks"
expect_status "export of nightly-2 as nightly-2" 0 "$VBFSCTL" export "$T/idx" --format blocks \
	--verify-key "$T/k.pub" --expect-backup-id nightly-2 --max-age 1h --output "$T/new.blocks"
check "export: written" test -s "$T/new.blocks"
mount_refused "mount refuses the old index as nightly-2" "$S" "$T/old" \
	"index is for backup id 'nightly-1', expected 'nightly-2'" "verify_key=$T/k.pub,expect_backup_id=nightly-2"
# sample and rto run the vbfs binary: the options pass through --mount-opts.
expect_status "rto refuses the old index as nightly-2" 2 env VBFS_BIN="$VBFS_BIN" "$VBFSCTL" rto \
	--target 1h --store "$S" --index "$T/old" --restore true \
	--mount-opts "verify_key=$T/k.pub,expect_backup_id=nightly-2"
check "rto says why" grep -qF "index is for backup id 'nightly-1', expected 'nightly-2'" "$T/last.err"
vbfs_mount "$S" "$T/idx" "$T/m2" "verify_key=$T/k.pub,expect_backup_id=nightly-2,max_age=1h" \
	&& pass "mount with the expected backup id and age"
vbfs_umount "$T/m2"
expect_eq "that mount exits 0" 0 "$VBFS_STATUS"
sleep 3.1   # `updated` is in whole seconds
expect_status "--max-age 2s refuses an index built over 2 s ago" 2 "$VBFSCTL" verify "$S" "$T/idx" --max-age 2s
one_line_with "max age" "older than the maximum age of 2 s"
mount_refused "mount refuses an index older than max_age" "$S" "$T/idx" "older than the maximum age of 2 s" "max_age=2s"
expect_status "export --max-age 2s refuses it too" 2 "$VBFSCTL" export "$T/idx" --format blocks --max-age 2s
one_line_with "export: max age" "older than the maximum age of 2 s"
expect_eq "export: no document on stdout" "" "$(cat "$T/last.out")"
expect_status "export: bad --max-age" 2 "$VBFSCTL" export "$T/idx" --format blocks --max-age 0
one_line_with "export: bad --max-age" "vbfsctl export: --max-age 0: must be a duration above 0"
# The backup id and the build time are in the root digest: relabelling a
# signed index breaks its signature (the forger cannot re-sign).
expect_status "bad --max-age" 2 "$VBFSCTL" verify "$S" "$T/idx" --max-age banana
one_line_with "bad --max-age" "--max-age banana: must be a duration above 0"
expect_status "--max-age 0" 2 "$VBFSCTL" verify "$S" "$T/idx" --max-age 0
mount_refused "mount, bad max_age" "$S" "$T/idx" "-o max_age=1d: must be a duration above 0" "max_age=1d"
finish
