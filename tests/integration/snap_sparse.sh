#!/usr/bin/env bash
# snap_sparse.sh - sparse files: holes recorded at build (SEEK_DATA and
# SEEK_HOLE on the store), not read; the mount answers lseek SEEK_DATA and
# SEEK_HOLE and reports the store's st_blocks, so cp --sparse, tar -S and du
# see the holes.  A hole that became data, or data that became a hole, is a
# damage event; hole bytes are served only where the store still has a
# hole or the bytes read back verify.
#
# A 5 GiB file at 4 KiB blocks (1,310,720 blocks, offsets past 4 GiB and
# block numbers past 2^20) with 2 MiB of data at 10 MiB and 8 KiB + 5 bytes
# at 4700 MiB.
. "$(dirname "$0")/lib.sh"
need jq; need python3; need getfattr attr

KiB=1024 MiB=1048576 GiB=1073741824
S=$T/store IDX=$T/index M=$T/mnt
mkdir -p "$S"
truncate -s $((5 * GiB)) "$S/vm.img"
make_file "$T/two" 2 two
dd if="$T/two" of="$S/vm.img" bs=1M seek=10 conv=notrunc status=none
make_file "$T/eight" 1 eight; head -c $((8 * KiB + 5)) "$T/eight" >"$T/tail"
dd if="$T/tail" of="$S/vm.img" bs=1M seek=4700 conv=notrunc status=none
printf 'dense file\n' >"$S/dense.txt"
store_blocks=$(stat -c %b "$S/vm.img")

expect_status "build at 4 KiB blocks" 0 "$VBFSCTL" build "$S" "$IDX" --block-size 4K --json
data=$((2 * MiB + 12 * KiB))   # the 4 KiB blocks that hold data: 512 + 3
expect_eq "bytes_hashed: the data blocks only, plus the small file" "$((data + 11))" \
	"$(jq -r .bytes_hashed "$T/last.out")"
expect_eq "bytes_holes: the rest of the 5 GiB" "$((5 * GiB - data))" "$(jq -r .bytes_holes "$T/last.out")"

vbfs_mount "$S" "$IDX" "$M" || { fail "mount"; finish; exit; }
expect_eq "size and st_blocks as in the store" "$((5 * GiB)) $store_blocks" "$(stat -c '%s %b' "$M/vm.img")"
expect_eq "du through the mount sees the holes" "$(du -k "$S/vm.img" | cut -f1)" "$(du -k "$M/vm.img" | cut -f1)"
seeks() {
	python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
out = []
for off, how in ((0, os.SEEK_DATA), (0, os.SEEK_HOLE), (10 << 20, os.SEEK_HOLE),
                 ((10 << 20) + 5, os.SEEK_DATA), (12 << 20, os.SEEK_DATA),
                 (4700 << 20, os.SEEK_HOLE), ((4700 << 20) + 12288, os.SEEK_DATA)):
    try:
        out.append(str(os.lseek(fd, off, how)))
    except OSError as e:
        out.append("ENXIO" if e.errno == 6 else "E%d" % e.errno)
print(" ".join(out))
EOF
}
expect_eq "SEEK_DATA/SEEK_HOLE through the mount" \
	"10485760 0 12582912 10485765 4928307200 4928319488 ENXIO" "$(seeks "$M/vm.img")"
expect_eq "a dense file: data to the end" "0 11" \
	"$(python3 -c 'import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); print(os.lseek(fd,0,os.SEEK_DATA), os.lseek(fd,0,os.SEEK_HOLE))' "$M/dense.txt")"
expect_eq "data past 4.5 GiB" "$(sha256sum <"$T/tail")" \
	"$(dd if="$M/vm.img" bs=1M skip=4700 count=1 status=none | head -c $((8 * KiB + 5)) | sha256sum)"

start=$(date +%s%N)
cp --sparse=always "$M/vm.img" "$T/copy.img"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "cp --sparse=always of 5 GiB took under 10 s ($ms ms)" [ "$ms" -lt 10000 ]
# Same bytes, compared extent by extent (cmp would read 10 GiB of zeros).
same_sparse() {
	python3 - "$1" "$2" <<'EOF'
import os, sys
def extents(path):
    fd, out, off = os.open(path, os.O_RDONLY), [], 0
    size = os.fstat(fd).st_size
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        off = h
    return fd, size, out
fa, sa, ea = extents(sys.argv[1])
fb, sb, eb = extents(sys.argv[2])
ok = sa == sb
for d, h in ea + eb:   # every byte either file has as data
    ok = ok and os.pread(fa, h - d, d) == os.pread(fb, h - d, d)
print("same" if ok else "differ")
EOF
}
expect_eq "the copy is the file" same "$(same_sparse "$S/vm.img" "$T/copy.img")"
check "the copy allocates about the data: $(du -k "$T/copy.img" | cut -f1) KiB" \
	[ "$(du -k "$T/copy.img" | cut -f1)" -le $(( (data / KiB) + 1024 )) ]
st=$(getfattr -n user.vbfs.stats --only-values "$M" 2>/dev/null)
check "cp read the data blocks, not 5 GiB ($(jq .bytes_served <<<"$st") bytes)" \
	[ "$(jq .bytes_served <<<"$st")" -lt $((16 * MiB)) ]
tar -C "$M" -cSf "$T/sparse.tar" vm.img
mkdir "$T/untar" && tar -C "$T/untar" -xSf "$T/sparse.tar"
check "tar -S keeps the holes" [ "$(du -k "$T/untar/vm.img" | cut -f1)" -le $(( (data / KiB) + 1024 )) ]
expect_eq "tar -S restores the file" same "$(same_sparse "$S/vm.img" "$T/untar/vm.img")"
vbfs_umount "$M"
expect_eq "clean unmount: exit 0" 0 "$VBFS_STATUS"
expect_status "verify: exit 0" 0 "$VBFSCTL" verify "$S" "$IDX" --json
expect_eq "verify: 1,310,720 + 1 blocks" 1310721 "$(jq -r .blocks "$T/last.out")"

# ---- layout changes ----------------------------------------------------------------
# Block 256 (1 MiB) was a hole: zeros written there.  Block 262144 (1 GiB)
# was a hole: other bytes.  Block 2560 (10 MiB) was data: punched out.
dd if=/dev/zero of="$S/vm.img" bs=4K seek=256 count=1 conv=notrunc status=none
printf 'Z' | dd of="$S/vm.img" bs=1 seek=$((GiB + 7)) conv=notrunc status=none
fallocate --punch-hole --offset $((10 * MiB)) --length 4096 "$S/vm.img"
: >"$M.log"
vbfs_mount "$S" "$IDX" "$M" || { fail "mount 2"; finish; exit; }
expect_eq "zeros where a hole was: served" "$(head -c 4096 /dev/zero | sha256sum)" \
	"$(dd if="$M/vm.img" bs=4K skip=256 count=1 status=none | sha256sum)"
expect_status "other bytes where a hole was: EIO" 1 dd if="$M/vm.img" of=/dev/null bs=4K skip=262144 count=1 status=none
expect_status "data punched out: EIO" 1 dd if="$M/vm.img" of=/dev/null bs=4K skip=2560 count=1 status=none
expect_eq "the hole next to it still reads" "$(head -c 4096 /dev/zero | sha256sum)" \
	"$(dd if="$M/vm.img" bs=4K skip=2559 count=1 status=none | sha256sum)"
vbfs_umount "$M"
expect_eq "layout changes: unmount exit 1" 1 "$VBFS_STATUS"
ev() { jq -r '"\(.event) \(.block) \(.offset) \(.detail)"' "$1" | sort; }
want="changed 256 1048576 a hole when indexed now holds data (the bytes still verify)
corrupt 2560 10485760 data when indexed is now a hole
corrupt 262144 1073741824 a hole when indexed now holds other data"
expect_eq "the three events, with block and offset" "$want" "$(ev "$M.log")"
expect_status "verify: exit 1" 1 "$VBFSCTL" verify "$S" "$IDX" --json
expect_eq "verify names the same three" "$want" "$(jq -c '.events[]' "$T/last.out" | ev /dev/stdin)"
finish
