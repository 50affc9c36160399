#!/bin/bash
# load_kill.sh - crashes: `kill -9` of the daemon in the middle of reads,
# then `fusermount3 -u` recovers the mountpoint and a fresh mount works;
# `kill -9` of `vbfsctl build` in the middle of a rebuild leaves the previous
# index opening and verifying, with no stray files in the index directory.
. "$(dirname "$0")/lib.sh"
S=$T/store
mkdir -p "$S"
for i in 1 2 3 4; do make_file "$S/f$i.bin" 8 "kill-$i"; done
expect_status "build" 0 "$VBFSCTL" build "$S" "$T/idx" --block-size 64K

# ---- kill -9 of the daemon while readers are inside it ------------------------
vbfs_mount "$S" "$T/idx" "$T/m" || { fail mount; finish; exit; }
PID=$VBFS_PID
READERS=()
# O_DIRECT: every read goes to the daemon.  (The kernel opens files itself
# and keeps their verified pages, so a buffered `cat` loop would go on
# reading cached pages after the daemon died, never asking it anything.)
for i in 1 2 3 4; do
	( while :; do dd if="$T/m/f$i.bin" of=/dev/null bs=64k iflag=direct status=none 2>/dev/null || break; done ) &
	READERS+=($!)
done
sleep 1
kill -9 "$PID"
wait "$PID" 2>/dev/null
# Readers see ENOTCONN and stop; none may hang.
for r in "${READERS[@]}"; do
	for _ in $(seq 1 50); do kill -0 "$r" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$r" 2>/dev/null; then fail "reader $r hangs after the daemon died"; kill "$r"; fi
	wait "$r" 2>/dev/null
done
pass "readers returned after kill -9"
ERR=$(stat "$T/m" 2>&1 >/dev/null)
case $ERR in *"not connected"*) pass "dead mount reports ENOTCONN";; *) fail "dead mount: '$ERR'";; esac
expect_status "fusermount3 -u recovers the dead mount" 0 fusermount3 -u "$T/m"
check "mountpoint is free" bash -c "! mountpoint -q '$T/m'"
vbfs_mount "$S" "$T/idx" "$T/m" && pass "a fresh mount works"
check "fresh mount serves the original bytes" cmp -s "$S/f3.bin" "$T/m/f3.bin"
vbfs_umount "$T/m"
expect_eq "fresh mount exit" 0 "$VBFS_STATUS"

# ---- kill -9 of a build in progress ----------------------------------------------
"$VBFSCTL" export "$T/idx" --format sha256sum >"$T/before.txt" 2>/dev/null
ls -l --time-style=+%s "$T/idx" | sort >"$T/idx-before.ls"
# More work for the rebuild: 2 GiB of new files, one thread.  Written
# zeros, not truncate: the build skips a sparse file's holes, so holes would
# give it nothing to hash.
for i in 1 2; do head -c 1G /dev/zero >"$S/new$i.img"; done
KILLED=0
for delay in 0.3 0.6 1.0; do
	"$VBFSCTL" build "$S" "$T/idx" --full --jobs 1 >/dev/null 2>"$T/build.err" &
	B=$!
	sleep "$delay"
	if kill -0 "$B" 2>/dev/null; then
		kill -9 "$B"; wait "$B" 2>/dev/null; KILLED=1
		break
	fi
	wait "$B"
	# finished too fast: restore the old index and try a shorter delay
	fail "build finished in under ${delay}s; cannot kill it mid-way"
	break
done
expect_eq "a build was killed mid-way" 1 "$KILLED"
expect_status "previous index still verifies" 0 "$VBFSCTL" verify "$S" "$T/idx"
"$VBFSCTL" export "$T/idx" --format sha256sum >"$T/after.txt" 2>/dev/null
check "previous index unchanged (same export)" cmp -s "$T/before.txt" "$T/after.txt"
check "no stray files in the index directory" bash -c "[ \"\$(ls '$T/idx' | sort | tr '\n' ' ')\" = 'data.mdb lock.mdb ' ]"
vbfs_mount "$S" "$T/idx" "$T/m" && pass "previous index mounts"
check "previous index serves f1" cmp -s "$S/f1.bin" "$T/m/f1.bin"
check "new files are not in the previous index" bash -c "[ ! -e '$T/m/new1.img' ]"
vbfs_umount "$T/m"
expect_status "the rebuild then completes" 0 "$VBFSCTL" build "$S" "$T/idx"
expect_status "and verifies" 0 "$VBFSCTL" verify "$S" "$T/idx"
finish
