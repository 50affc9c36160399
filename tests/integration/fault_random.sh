#!/bin/bash
# fault_random.sh - randomized fault injection at scale, reproducible.
#
# Builds stores of four shapes (4K, 64K and 1M blocks; many small files, a few
# multi-MiB ones; odd names), indexes each, injects hundreds of faults (bit
# flips, zeroed sectors, truncations mid-block / at a block boundary / to
# zero, deletions, same-size replacements, swapped files, swapped blocks, a
# file grown, turned into a directory, a symlink or a FIFO), then reads every
# block through the mount (twice, random order) and scrubs with
# `vbfsctl verify --json`.  The fourth store is served through an inner vbfs
# mount, so the store itself returns EIO: `unreadable`.
#
# Invariants (tests/integration/faultgen.py "check"): no read returns a byte
# that differs from the original; EIO exactly on damaged blocks; the mount log
# and the scrub each report every damaged block (path, block, offset,
# expected/actual digest) and nothing else; exit statuses 1.
#
# Rerun a failure with the seed it printed: VBFS_FAULT_SEED=N.
# VBFS_FAULT_SCALE=k multiplies the number of faults (default 1).
. "$(dirname "$0")/lib.sh"
FG="python3 $(dirname "$0")/faultgen.py"
SEED=${VBFS_FAULT_SEED:-$(( $(od -An -N4 -tu4 /dev/urandom) % 1000000 ))}
SCALE=${VBFS_FAULT_SCALE:-1}
echo "# fault_random seed $SEED (rerun: VBFS_FAULT_SEED=$SEED)"
START=$(date +%s)

TOT_FAULTS=0; TOT_BLOCKS=0; TOT_BYTES=0; TOT_WRONG=0; TOT_MISSED=0; TOT_FALSE=0
TOT_EXPECTED=0; TOT_DAMAGED=0; TOT_MEV=0; TOT_SEV=0
declare -A KINDS

# add_totals JSON: sum one store's totals.
add_totals() {
	local j=$1
	eval "$(python3 -c '
import json,sys; t=json.loads(sys.argv[1])
print("b=%d by=%d w=%d m=%d f=%d e=%d d=%d me=%d se=%d" % (t["blocks_read"], t["bytes_read"],
      t["wrong_bytes"], t["missed"], t["false_alarms"], t["expected_events"], t["damaged_blocks"],
      t["mount_events"], t["scrub_events"]))' "$j")"
	TOT_BLOCKS=$((TOT_BLOCKS + b)); TOT_BYTES=$((TOT_BYTES + by)); TOT_WRONG=$((TOT_WRONG + w))
	TOT_MISSED=$((TOT_MISSED + m)); TOT_FALSE=$((TOT_FALSE + f)); TOT_EXPECTED=$((TOT_EXPECTED + e))
	TOT_DAMAGED=$((TOT_DAMAGED + d)); TOT_MEV=$((TOT_MEV + me)); TOT_SEV=$((TOT_SEV + se))
}

count_faults() {
	python3 -c '
import json,sys,collections; f=json.load(open(sys.argv[1]))
c=collections.Counter(x["kind"] for x in f)
print(len(f)); print(" ".join("%s=%d" % kv for kv in sorted(c.items())))' "$1"
}

# one_store NAME SHAPE BS NFAULTS
one_store() {
	local name=$1 shape=$2 bs=$3 nf=$4 seed=$((SEED * 10 + $5))
	local D=$T/$name bsb
	bsb=$(numfmt --from=iec "$bs")
	mkdir -p "$D"
	$FG make "$D/store" "$seed" "$shape" >/dev/null || { fail "$name: make store"; return; }
	cp -a "$D/store" "$D/pristine"
	expect_status "$name: build ($bs blocks)" 0 "$VBFSCTL" build "$D/store" "$D/idx" --block-size "$bs"
	expect_status "$name: clean verify" 0 "$VBFSCTL" verify "$D/store" "$D/idx"
	$FG inject "$D/store" "$D/pristine" "$seed" "$((nf * SCALE))" "$bsb" >"$D/faults.json" || { fail "$name: inject"; return; }
	$FG expect "$D/store" "$D/pristine" "$bsb" >"$D/expect.json"
	local info n
	info=$(count_faults "$D/faults.json"); n=${info%%$'\n'*}
	TOT_FAULTS=$((TOT_FAULTS + n))
	echo "# $name: $n faults: ${info#*$'\n'}"

	vbfs_mount "$D/store" "$D/idx" "$D/mnt" || { fail "$name: mount"; return; }
	$FG read "$D/mnt" "$D/pristine" "$bsb" "$seed" >"$D/read.json" || fail "$name: read pass crashed"
	getfattr -n user.vbfs.stats --only-values "$D/mnt" >"$D/stats.json" 2>/dev/null
	vbfs_umount "$D/mnt"
	expect_eq "$name: vbfs exit after damage" 1 "$VBFS_STATUS"
	"$VBFSCTL" verify "$D/store" "$D/idx" --json >"$D/scrub.json" 2>"$D/scrub.err"
	expect_eq "$name: verify exit" 1 "$?"
	local totals
	if totals=$($FG check "$D/expect.json" "$D/read.json" "$D/mnt.log" "$D/scrub.json" "$bsb" "$D/pristine" "$D/store" 2>"$D/check.err"); then
		pass "$name: every invariant held ($totals)"
	else
		fail "$name: invariants violated ($totals)"; head -40 "$D/check.err" >&2
	fi
	[ -n "$totals" ] && add_totals "$totals"
	# the live counters agree with the log
	python3 - "$D/stats.json" "$D/mnt.log" <<'EOF' && pass "$name: stats xattr matches the log" || fail "$name: stats xattr vs log"
import json, sys, collections
s = json.load(open(sys.argv[1]))
c = collections.Counter(json.loads(l)["event"] for l in open(sys.argv[2]) if l.strip())
bad = {k: (v, c.get(k, 0)) for k, v in s["events"].items() if v != c.get(k, 0)}
sys.exit(1 if bad else 0)
EOF
}

# The store returns EIO itself: serve it through an inner vbfs mount.
unreadable_store() {
	local name=unreadable64k seed=$((SEED * 10 + 9)) D=$T/unreadable64k bsb=65536
	mkdir -p "$D"
	$FG make "$D/store" "$seed" nested64k >/dev/null
	cp -a "$D/store" "$D/pristine"
	expect_status "$name: build" 0 "$VBFSCTL" build "$D/store" "$D/idx" --block-size 64K
	vbfs_mount "$D/store" "$D/idx" "$D/inner" || { fail "$name: inner mount"; return; }
	local inner_pid=$VBFS_PID
	$FG inject "$D/store" "$D/pristine" "$seed" "$((30 * SCALE))" "$bsb" --inplace >"$D/faults.json"
	$FG expect "$D/store" "$D/pristine" "$bsb" --unreadable >"$D/expect.json"
	local info n
	info=$(count_faults "$D/faults.json"); n=${info%%$'\n'*}
	TOT_FAULTS=$((TOT_FAULTS + n))
	echo "# $name: $n faults under an inner vbfs: ${info#*$'\n'}"
	vbfs_mount "$D/inner" "$D/idx" "$D/outer" || { fail "$name: outer mount"; return; }
	$FG read "$D/outer" "$D/pristine" "$bsb" "$seed" >"$D/read.json" || fail "$name: read pass crashed"
	vbfs_umount "$D/outer"
	expect_eq "$name: outer vbfs exit" 1 "$VBFS_STATUS"
	"$VBFSCTL" verify "$D/inner" "$D/idx" --json >"$D/scrub.json" 2>"$D/scrub.err"
	expect_eq "$name: verify through the inner mount exit" 1 "$?"
	VBFS_PID=$inner_pid
	vbfs_umount "$D/inner"
	local totals
	if totals=$($FG check "$D/expect.json" "$D/read.json" "$D/outer.log" "$D/scrub.json" "$bsb" "$D/pristine" "$D/store" 2>"$D/check.err"); then
		pass "$name: every invariant held ($totals)"
	else
		fail "$name: invariants violated ($totals)"; head -40 "$D/check.err" >&2
	fi
	[ -n "$totals" ] && add_totals "$totals"
}

one_store small4k small4k 4K 170 1
one_store mixed64k mixed64k 64K 130 2
one_store large1m large1m 1M 70 3
unreadable_store

SECS=$(( $(date +%s) - START ))
echo "# FAULT TOTALS seed=$SEED: faults injected $TOT_FAULTS, blocks read $TOT_BLOCKS ($((TOT_BYTES / 1048576)) MiB), damaged blocks $TOT_DAMAGED, expected events $TOT_EXPECTED, mount events $TOT_MEV, scrub events $TOT_SEV, wrong bytes returned: $TOT_WRONG, missed detections: $TOT_MISSED, false alarms: $TOT_FALSE, ${SECS} s"
if [ -n "${VBFS_REPORT_DIR:-}" ]; then
	mkdir -p "$VBFS_REPORT_DIR"
	cat >"$VBFS_REPORT_DIR/fault_random.md" <<EOF
| seed | faults injected | blocks read | damaged blocks | events expected / mount / scrub | wrong bytes returned | missed detections | false alarms | seconds |
|---|---|---|---|---|---|---|---|---|
| $SEED | $TOT_FAULTS | $TOT_BLOCKS ($((TOT_BYTES / 1048576)) MiB) | $TOT_DAMAGED | $TOT_EXPECTED / $TOT_MEV / $TOT_SEV | $TOT_WRONG | $TOT_MISSED | $TOT_FALSE | $SECS |
EOF
fi
expect_eq "wrong bytes returned" 0 "$TOT_WRONG"
expect_eq "missed detections" 0 "$TOT_MISSED"
expect_eq "false alarms" 0 "$TOT_FALSE"
finish
