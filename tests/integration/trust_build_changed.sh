#!/bin/bash
# trust_build_changed.sh - the build never records digests it cannot stand
# behind (issue 15, items 6 and 7).  The build is stopped (SIGSTOP) at a
# known point, the store is changed, and it is let go (SIGCONT):
#   - a byte overwritten, or bytes appended, while the file is hashed: the
#     file is hashed again, the index holds its new bytes, verify is OK;
#   - a file that never holds still: build exits 1 naming it ("changed while
#     indexing"), the index holds no digests for it, the mount gives EIO and
#     a `changed` event, verify exits 1;
#   - a root-only 0600 file renamed onto a public 0644 name during the build:
#     the index records what it hashed, with ITS mode and owner, so another
#     user cannot read the secret through an allow_other mount;
#   - a FIFO planted where a regular file was, at build time or at mount
#     time, is never opened (a blocked writer stays blocked).
. "$(dirname "$0")/lib.sh"
need jq
AS_NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
chmod 711 "$T"
S=$T/store
mkdir -p "$S"

# A 256 MiB file of data (zeros written, not holes: holes are not read):
# slow enough to hash (--jobs 1) to be caught in the act, quick to make.
BIG=$((256 << 20))
big() { head -c "$BIG" /dev/zero >"$1"; printf 'head' | dd of="$1" conv=notrunc status=none; }

# build_until_open PATH ARGS...: start `vbfsctl build ARGS` (--jobs 1) in
# the background, stop it as soon as it has PATH open.  Sets BUILD_PID.
build_until_open() {
	local path=$1 i; shift
	"$VBFSCTL" build "$@" --jobs 1 --json >"$T/build.out" 2>"$T/build.err" &
	BUILD_PID=$!
	_PIDS+=("$BUILD_PID")
	for i in $(seq 1 2000); do
		if ls -l "/proc/$BUILD_PID/fd" 2>/dev/null | grep -qF -- "-> $path"; then
			kill -STOP "$BUILD_PID"
			return 0
		fi
		kill -0 "$BUILD_PID" 2>/dev/null || break
		sleep 0.005
	done
	echo "build never opened $path" >&2
	return 1
}
build_resume() { kill -CONT "$BUILD_PID"; wait "$BUILD_PID"; BUILD_STATUS=$?; }

# ---- a byte overwritten while the file is hashed: hashed again ------------------------
big "$S/big.bin"
build_until_open "$S/big.bin" "$S" "$T/i1" || { fail "catch the build"; finish; exit; }
printf 'X' | dd of="$S/big.bin" bs=1 seek=1 conv=notrunc status=none
build_resume
expect_eq "overwrite: build exits 0" 0 "$BUILD_STATUS"
expect_eq "overwrite: the file was hashed again" 1 "$(jq .files_rehashed "$T/build.out")"
expect_status "overwrite: verify OK (the index holds the new bytes)" 0 "$VBFSCTL" verify "$S" "$T/i1"

# ---- bytes appended while hashed: hashed again at its new size --------------------------
build_until_open "$S/big.bin" "$S" "$T/i2" || { fail "catch the build"; finish; exit; }
printf 'tail' >>"$S/big.bin"
build_resume
expect_eq "append: build exits 0" 0 "$BUILD_STATUS"
expect_eq "append: hashed again" 1 "$(jq .files_rehashed "$T/build.out")"
expect_status "append: verify OK" 0 "$VBFSCTL" verify "$S" "$T/i2"
vbfs_mount "$S" "$T/i2" "$T/m2" || { fail mount; finish; exit; }
expect_eq "append: the mount shows the new size" $((BIG + 4)) "$(stat -c %s "$T/m2/big.bin")"
expect_eq "append: the tail reads" tail "$(tail -c 4 "$T/m2/big.bin")"
vbfs_umount "$T/m2"
rm "$S/big.bin"

# ---- a file that never holds still: no digests, named, exit 1 ------------------------------
head -c 64M /dev/zero >"$S/busy.bin"   # data, not holes: each hash takes a while
make_file "$S/calm.bin" 1 calm
# One byte at a time through one read-write descriptor (no process per
# write): the file changes every few microseconds, even on a busy machine.
( exec 3<>"$S/busy.bin"; while :; do printf 'x' >&3; done ) &
WRITER=$!
_PIDS+=("$WRITER")
"$VBFSCTL" build "$S" "$T/i3" --json >"$T/last.out" 2>"$T/last.err"
RC=$?
kill "$WRITER"; wait "$WRITER" 2>/dev/null
expect_eq "busy: build exits 1" 1 "$RC"
grep -q '^busy.bin: FAIL changed: changed while it was hashed (hashed 4 times): changed while indexing, no digests recorded' "$T/last.err" &&
	pass "busy: build names it" || fail "busy: build stderr: $(cat "$T/last.err")"
expect_eq "busy: counted" "1 0" "$(jq -r '"\(.files_changed) \(.files_unreadable)"' "$T/last.out")"
expect_status "busy: verify exits 1" 1 "$VBFSCTL" verify "$S" "$T/i3" --json
expect_eq "busy: verify's one finding" "busy.bin changed" \
	"$(jq -r '.events[] | "\(.path) \(.event)"' "$T/last.out")"
vbfs_mount "$S" "$T/i3" "$T/m3" || { fail mount; finish; exit; }
ERR=$(cat "$T/m3/busy.bin" 2>&1 >/dev/null)
case $ERR in *"Input/output error"*) pass "busy: reading it through the mount is EIO";; *) fail "busy read: $ERR";; esac
check "busy: the calm file reads" cmp -s "$S/calm.bin" "$T/m3/calm.bin"
vbfs_umount "$T/m3"
expect_eq "busy: daemon exit 1" 1 "$VBFS_STATUS"
expect_eq "busy: the event" "changed busy.bin changed while the index was built: no digests were recorded" \
	"$(jq -r '"\(.event) \(.path) \(.detail)"' "$T/m3.log")"
rm -f "$S/busy.bin" "$S/calm.bin"

# ---- a secret renamed onto a public name during the build ------------------------------
mkdir -p "$S/hidden" "$S/pub"
chmod 700 "$S/hidden"; chmod 755 "$S" "$S/pub"
echo "TOP SECRET" >"$S/hidden/secret"; chmod 600 "$S/hidden/secret"
echo "public words" >"$S/pub/public.txt"; chmod 644 "$S/pub/public.txt"
big "$S/pub/a_big.bin"   # hashed before public.txt (--jobs 1, name order)
build_until_open "$S/pub/a_big.bin" "$S" "$T/i4" || { fail "catch the build"; finish; exit; }
mv "$S/hidden/secret" "$S/pub/public.txt"
build_resume
expect_eq "swap: build exits 0 (it hashed what it found)" 0 "$BUILD_STATUS"
vbfs_mount "$S" "$T/i4" "$T/m4" allow_other || { fail mount; finish; exit; }
expect_eq "swap: the index records the mode and owner of the file it hashed" "600 0" \
	"$(stat -c '%a %u' "$T/m4/pub/public.txt")"
ERR=$($AS_NOBODY cat "$T/m4/pub/public.txt" 2>&1)
case $ERR in *"Permission denied"*) pass "swap: another user cannot read the secret";; *) fail "swap: nobody read: '$ERR'";; esac
expect_eq "swap: root reads the bytes hashed" "TOP SECRET" "$(cat "$T/m4/pub/public.txt")"
vbfs_umount "$T/m4"
rm -rf "$S/hidden" "$S/pub"

# ---- a FIFO planted during the build, and after it: never opened ---------------------------
# blocked_writer FIFO: a writer that blocks in open() until someone opens
# FIFO for reading; it then leaves $T/opened.  Sets WPID.
blocked_writer() {
	( exec 3>"$1"; touch "$T/opened" ) &
	WPID=$!
	_PIDS+=("$WPID")
}
big "$S/a_big.bin"
echo "plain" >"$S/zfile"
build_until_open "$S/a_big.bin" "$S" "$T/i5" || { fail "catch the build"; finish; exit; }
rm "$S/zfile"; mkfifo "$S/zfile"
blocked_writer "$S/zfile"
build_resume
expect_eq "fifo at build: exit 1" 1 "$BUILD_STATUS"
grep -q '^zfile: FAIL changed: is no longer a regular file' "$T/build.err" &&
	pass "fifo at build: named" || fail "fifo at build: $(cat "$T/build.err")"
check "fifo at build: never opened" test ! -e "$T/opened"
kill "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null
rm "$S/zfile"; echo "plain" >"$S/zfile"
expect_status "rebuild" 0 "$VBFSCTL" build "$S" "$T/i6"
rm "$S/zfile"; mkfifo "$S/zfile"
blocked_writer "$S/zfile"
vbfs_mount "$S" "$T/i6" "$T/m6" || { fail mount; finish; exit; }
ERR=$(timeout 10 cat "$T/m6/zfile" 2>&1 >/dev/null)
case $ERR in *"Input/output error"*) pass "fifo at mount: EIO";; *) fail "fifo at mount: '$ERR'";; esac
check "fifo at mount: never opened" test ! -e "$T/opened"
vbfs_umount "$T/m6"
expect_eq "fifo at mount: the event" "changed zfile is now a FIFO (not opened)" \
	"$(jq -r '"\(.event) \(.path) \(.detail)"' "$T/m6.log")"
kill "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null
finish
