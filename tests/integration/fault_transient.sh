#!/bin/bash
# fault_transient.sh - transient versus persistent damage, for real.
#
# A store on ext4 on a loop device.  To make a read that is wrong once and
# right the next time (a flaky disk or network path), the page cache is
# poisoned while the disk stays good:
#   1. write bad bytes to the file's physical block on the loop device
#      (O_DIRECT, behind the filesystem's back), with the file's pages evicted;
#   2. read that page through the filesystem: the page cache now holds the
#      bad bytes;
#   3. write the good bytes back to the device (O_DIRECT): the disk is good,
#      the cache is not.
# vbfs_block_verify() sees the mismatch, drops the pages (POSIX_FADV_DONTNEED)
# and reads again from the disk: the block must be `transient` (exit 0,
# good bytes served), not `corrupt`.  With the bad bytes left on the disk
# the same block is `corrupt` (exit 1).
. "$(dirname "$0")/lib.sh"
for c in losetup mkfs.ext4 filefrag; do command -v $c >/dev/null || skip "needs $c"; done
LOOP=""
FSMNT=$T/ext4
teardown() {
	mountpoint -q "$FSMNT" 2>/dev/null && umount "$FSMNT"
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
}
trap 'cleanup_all' EXIT
cleanup_all() {
	local m
	for m in "${_MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	teardown
	cleanup
}

truncate -s 64M "$T/ext4.img"
mkfs.ext4 -q -F -b 4096 "$T/ext4.img" || skip "mkfs.ext4 failed"
LOOP=$(losetup -f --show "$T/ext4.img" 2>/dev/null) || skip "no loop device"
mkdir -p "$FSMNT"
mount "$LOOP" "$FSMNT" 2>/dev/null || skip "cannot mount ext4 on $LOOP"
S=$FSMNT/store
mkdir -p "$S"
make_file "$S/f.bin" 1 transient            # 16 blocks of 64 KiB
make_file "$S/other.bin" 1 other
sync
cp "$S/f.bin" "$T/pristine-f"
expect_status "build" 0 "$VBFSCTL" build "$S" "$T/idx" --block-size 64K
BLOCK=5
OFF=$((BLOCK * 65536 + 8192))               # a page inside block 5

# Physical byte offset of file offset OFF on the device (4 KiB fs blocks).
phys_of() {
	filefrag -v -b4096 "$1" | python3 -c '
import re, sys
lb = int(sys.argv[1]) // 4096
for line in sys.stdin:
    m = re.match(r"\s*\d+:\s*(\d+)\.\.\s*(\d+):\s*(\d+)\.\.\s*(\d+):", line)
    if m and int(m.group(1)) <= lb <= int(m.group(2)):
        print((int(m.group(3)) + lb - int(m.group(1))) * 4096); break' "$2"
}
PHYS=$(phys_of "$S/f.bin" "$OFF")
[ -n "$PHYS" ] || { fail "cannot map the file offset to the device"; finish; exit; }
dd if="$S/f.bin" of="$T/good.page" bs=4096 skip=$((OFF / 4096)) count=1 status=none
head -c 4096 /dev/urandom >"$T/bad.page"

evict() { python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"; }
to_disk() { dd if="$1" of="$LOOP" bs=4096 seek=$((PHYS / 4096)) count=1 oflag=direct conv=notrunc status=none; }
cached_page() { dd if="$S/f.bin" bs=4096 skip=$((OFF / 4096)) count=1 status=none; }
poison_cache() {
	evict "$S/f.bin"
	to_disk "$T/bad.page"
	cached_page | cmp -s - "$T/bad.page" || { fail "could not poison the page cache"; return 1; }
	to_disk "$T/good.page"
	cached_page | cmp -s - "$T/bad.page" || { fail "page cache did not keep the bad page"; return 1; }
}

# ---- the scrub ------------------------------------------------------------------
poison_cache && pass "page cache poisoned, disk good"
"$VBFSCTL" verify "$S" "$T/idx" --json >"$T/v.json" 2>"$T/v.err"
expect_eq "verify: a transient fault is not damage (exit 0)" 0 "$?"
python3 - "$T/v.json" $BLOCK <<'EOF' && pass "verify: one 'transient' event for block $BLOCK" || fail "verify transient event: $(cat "$T/v.json" | head -c 600)"
import json, sys
ev = json.load(open(sys.argv[1]))["events"]
b = int(sys.argv[2])
assert len(ev) == 1, ev
e = ev[0]
assert (e["event"], e["path"], e["block"], e["offset"]) == ("transient", "f.bin", b, b * 65536), e
assert e["expected"] == e["actual"], e           # the second reading matched
EOF
check "after the re-read the cache holds the good page" bash -c "cmp -s <(dd if='$S/f.bin' bs=4096 skip=$((OFF / 4096)) count=1 status=none) '$T/good.page'"

# ---- the mount --------------------------------------------------------------------
poison_cache && pass "page cache poisoned again"
vbfs_mount "$S" "$T/idx" "$T/m" || { fail mount; finish; exit; }
check "the mount serves the original bytes" cmp -s "$T/m/f.bin" "$T/pristine-f"
check "the served page is the good one" bash -c "cmp -s <(dd if='$T/m/f.bin' bs=4096 skip=$((OFF / 4096)) count=1 status=none) '$T/good.page'"
vbfs_umount "$T/m"
expect_eq "vbfs exit: transient is not damage" 0 "$VBFS_STATUS"
python3 - "$T/m.log" $BLOCK <<'EOF' && pass "mount log: one 'transient' event for block $BLOCK" || fail "mount transient event: $(head -c 600 "$T/m.log")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
b = int(sys.argv[2])
assert [(e["event"], e["path"], e["block"]) for e in ev] == [("transient", "f.bin", b)], ev
EOF

# ---- persistent: the disk itself is bad ------------------------------------------------
evict "$S/f.bin"; to_disk "$T/bad.page"; evict "$S/f.bin"
"$VBFSCTL" verify "$S" "$T/idx" --json >"$T/p.json" 2>/dev/null
expect_eq "verify: persistent damage (exit 1)" 1 "$?"
python3 -c '
import json, sys
ev = json.load(open(sys.argv[1]))["events"]
assert [(e["event"], e["block"]) for e in ev] == [("corrupt", int(sys.argv[2]))], ev' "$T/p.json" $BLOCK \
	&& pass "verify: 'corrupt' for block $BLOCK" || fail "persistent event: $(head -c 400 "$T/p.json")"
finish
