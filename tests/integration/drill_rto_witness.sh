#!/usr/bin/env bash
# drill_rto_witness.sh - `vbfsctl rto` never says "met" on a damaged backup
# when its event log cannot be written.
#
# The regression: rto decided only from the events it read back from its
# private log.  With $TMPDIR on a full filesystem the daemon cannot write
# that log; a restore command that swallows the EIO then gave "MET", exit 0.
# Now the mount's counters (the stats xattr, read before the unmount) and the
# daemon's exit status are witnesses too: the damage is counted, and a
# disagreement makes the drill fail.
# The mount keeps a private copy of the index in $TMPDIR, so the tmpfs is
# filled by the restore command itself, after the mount came up: then the
# daemon can no longer append to its event log.
. "$(dirname "$0")/lib.sh"
need jq
FULL=$T/full
mkdir -p "$FULL"
mount -t tmpfs -o size=1m tmpfs "$FULL" || skip "cannot mount a tmpfs"
_MOUNTS+=("$FULL")
trap 'umount "$FULL" 2>/dev/null; cleanup' EXIT

S=$T/store I=$T/index
mkdir -p "$S"
make_file "$S/bad" 3
make_file "$S/good" 1
"$VBFSCTL" build "$S" "$I" >/dev/null 2>&1 || { fail "build"; finish; exit; }
flip_byte "$S/bad" 1500000

not_grep() { ! grep -q "$@"; }
# The restore fills the tmpfs (and notes how much was left), then reads.
fill="dd if=/dev/zero of='$FULL/fill' bs=4k 2>/dev/null; dd if=/dev/zero of='$FULL/fill2' bs=512 2>/dev/null; df --output=avail '$FULL' | tail -1 | tr -d ' ' >'$T/avail'"
swallow="$fill; "'cat "$VBFS_MOUNT/bad" >/dev/null 2>&1; true'
# full_drill WHAT EXIT RESTORE [ARGS]: an rto drill with TMPDIR on the tmpfs
full_drill() {
	local what=$1 want=$2 restore=$3; shift 3
	rm -f "$T/avail"
	expect_status "$what" "$want" env TMPDIR="$FULL" "$VBFSCTL" rto --target 1h \
		--store "$S" --index "$I" --restore "$restore" "$@"
	expect_eq "$what: the tmpfs was full when the restore read" 0 "$(cat "$T/avail" 2>/dev/null)"
	rm -f "$FULL"/fill*
}
full_drill "full TMPDIR, damage swallowed: not met" 1 "$swallow"
check "no MET line" not_grep '^rto: MET' "$T/last.err"
check "the damage is counted" grep -q '^rto: DAMAGED: 1 damage event during the drill' "$T/last.err"
check "says why it cannot vouch" grep -q 'event log holds 0 damage events, the mount counted 1' "$T/last.err"

full_drill "full TMPDIR, --json" 1 "$swallow" --json
expect_eq "json: met false" false "$(jq .met "$T/last.out")"
expect_eq "json: 1 damage event" 1 "$(jq .events "$T/last.out")"
expect_eq "json: verdict damaged" damaged "$(jq -r .verdict "$T/last.out")"
check "json: reason" grep -q 'the mount counted 1' <(jq -r .reason "$T/last.out")

# The same drill with a writable TMPDIR: the log and the counters agree.
expect_status "writable TMPDIR: damage found" 1 \
	"$VBFSCTL" rto --target 1h --store "$S" --index "$I" --restore 'cat "$VBFS_MOUNT/bad" >/dev/null 2>&1; true'
check "writable: the event is named" grep -q '^rto: damage: corrupt bad block 1' "$T/last.err"
check "writable: no cannot-vouch line" not_grep 'cannot vouch' "$T/last.err"
# And a clean restore on the full TMPDIR is still met: nothing to log.
full_drill "full TMPDIR, clean restore: met" 0 "$fill; "'cat "$VBFS_MOUNT/good" >/dev/null'
finish
