#!/bin/bash
# trust_security.sh - the mount's security properties (issue 5 "Security"):
#   - a mount is private to the user who made it (others get EACCES);
#   - with allow_other, modes and owners from the index are enforced
#     (default_permissions), not the store's current ones;
#   - the daemon never opens a path outside the store: a file, or a parent
#     directory, replaced by a symlink pointing outside is `changed` and
#     EIO, even when the outside copy has the very same bytes;
#   - every write path is EROFS.
. "$(dirname "$0")/lib.sh"
AS_NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
chmod 711 "$T"
S=$T/store
mkdir -p "$S/pub" "$S/dir"
make_file "$S/pub/open.bin" 1 open
make_file "$S/pub/secret.bin" 1 secret
chmod 644 "$S/pub/open.bin"; chmod 600 "$S/pub/secret.bin"
make_file "$S/dir/inner.bin" 1 inner
make_file "$S/file.bin" 1 file
chmod -R a+rX "$S"; chmod 600 "$S/pub/secret.bin"
expect_status "build" 0 "$VBFSCTL" build "$S" "$T/idx" --block-size 64K

# ---- private by default ------------------------------------------------------------
vbfs_mount "$S" "$T/idx" "$T/m" || { fail mount; finish; exit; }
check "root reads its own mount" cmp -s "$S/pub/open.bin" "$T/m/pub/open.bin"
ERR=$($AS_NOBODY cat "$T/m/pub/open.bin" 2>&1 >/dev/null)
case $ERR in *"Permission denied"*) pass "another user cannot enter a private mount";; *) fail "private mount: '$ERR'";; esac
vbfs_umount "$T/m"

# ---- allow_other: the index's modes rule -----------------------------------------------
grep -q '^user_allow_other' /etc/fuse.conf 2>/dev/null || true   # root needs no fuse.conf entry
vbfs_mount "$S" "$T/idx" "$T/mo" allow_other || { fail "mount allow_other"; finish; exit; }
check "allow_other: others read a 0644 file" bash -c "$AS_NOBODY cat '$T/mo/pub/open.bin' | cmp -s - '$S/pub/open.bin'"
ERR=$($AS_NOBODY cat "$T/mo/pub/secret.bin" 2>&1 >/dev/null)
case $ERR in *"Permission denied"*) pass "allow_other: a 0600 file stays private";; *) fail "0600 through allow_other: '$ERR'";; esac
# Loosening the store's mode later does not loosen the mount: the index rules.
chmod 644 "$S/pub/secret.bin"
ERR=$($AS_NOBODY cat "$T/mo/pub/secret.bin" 2>&1 >/dev/null)
case $ERR in *"Permission denied"*) pass "modes come from the index, not the store";; *) fail "store mode leaked: '$ERR'";; esac
chmod 600 "$S/pub/secret.bin"
vbfs_umount "$T/mo"

# ---- never outside the store -------------------------------------------------------------
OUT=$T/outside; mkdir -p "$OUT"
cp -a "$S/dir" "$OUT/dir"; cp -a "$S/file.bin" "$OUT/file.bin"   # identical bytes outside
mv "$S/file.bin" "$T/file.bin.orig"; ln -s "$OUT/file.bin" "$S/file.bin"
mv "$S/dir" "$T/dir.orig"; ln -s "$OUT/dir" "$S/dir"
vbfs_mount "$S" "$T/idx" "$T/m2" || { fail mount2; finish; exit; }
ERR=$(cat "$T/m2/file.bin" 2>&1 >/dev/null)
case $ERR in *"Input/output error"*) pass "file replaced by a symlink out of the store: EIO";; *) fail "symlinked file: '$ERR'";; esac
ERR=$(cat "$T/m2/dir/inner.bin" 2>&1 >/dev/null)
case $ERR in *"Input/output error"*) pass "parent directory replaced by a symlink out of the store: EIO";; *) fail "symlinked parent: '$ERR'";; esac
check "an intact file still reads" cmp -s "$S/pub/open.bin" "$T/m2/pub/open.bin"
# ---- read-only ----------------------------------------------------------------------------------
for op in "touch '$T/m2/new'" "echo x >>'$T/m2/pub/open.bin'" "rm '$T/m2/pub/open.bin'" \
	  "mkdir '$T/m2/d2'" "mv '$T/m2/pub/open.bin' '$T/m2/pub/o2'" "chmod 777 '$T/m2/pub/open.bin'" \
	  "ln -s x '$T/m2/l'" "setfattr -n user.x -v 1 '$T/m2/pub/open.bin'" "truncate -s 0 '$T/m2/pub/open.bin'"; do
	ERR=$(bash -c "$op" 2>&1)
	case $ERR in *"Read-only file system"*) pass "EROFS: $op";; *) fail "not EROFS: $op: '$ERR'";; esac
done
vbfs_umount "$T/m2"
expect_eq "vbfs exit (changed entries are damage)" 1 "$VBFS_STATUS"
python3 - "$T/m2.log" <<'EOF' && pass "events: both symlinked entries 'changed', nothing else" || fail "events for symlinked entries"
import json, sys
got = sorted((e["path"], e["event"]) for e in map(json.loads, open(sys.argv[1])))
want = [("dir/inner.bin", "changed"), ("file.bin", "changed")]
if got != want: print(got, file=sys.stderr)
sys.exit(got != want)
EOF
"$VBFSCTL" verify "$S" "$T/idx" --json >"$T/v.json" 2>/dev/null
expect_eq "verify exit" 1 "$?"
python3 - "$T/v.json" <<'EOF' && pass "scrub: the symlinked file and directory are 'changed', nothing read through them" || fail "scrub events"
import json, sys
ev = json.load(open(sys.argv[1]))["events"]
kinds = {(e["path"], e["event"]) for e in ev}
assert ("file.bin", "changed") in kinds and ("dir", "changed") in kinds, kinds
assert all(e["event"] != "corrupt" for e in ev), ev
EOF
rm "$S/file.bin" "$S/dir"; mv "$T/file.bin.orig" "$S/file.bin"; mv "$T/dir.orig" "$S/dir"
expect_status "store restored: verify clean again" 0 "$VBFSCTL" verify "$S" "$T/idx"
finish
