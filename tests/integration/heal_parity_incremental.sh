#!/usr/bin/env bash
# heal_parity_incremental.sh - an incremental build (in place, or --reuse
# OLD_INDEX) re-encodes only the parity groups around what changed, copies
# the rest from the old parity after checking each fragment, and the result
# is byte for byte the parity a fresh build writes; it heals as well.
#
# Store: 60 files of 10 full 64 KiB blocks and a short last block (600 full
# members, 60 short ones) at 4+2: groups of 64..128 members, so about 7
# groups of the full sequence and 1 of the short one.
. "$(dirname "$0")/lib.sh"
need jq

K64=65536
S=$T/store IDX=$T/index P=$T/index/parity M=$T/mnt
gen() {   # gen FILE BYTES SEED
	openssl enc -aes-128-ctr -pass "pass:$3" -nosalt -pbkdf2 -in /dev/zero 2>/dev/null | head -c "$2" >"$1"
}
mkdir -p "$S"
for i in $(seq -w 1 60); do gen "$S/f$i" $((10 * K64 + 10#$i * 123)) "f$i"; done

groups() { jq -r '.parity | "\(.groups) \(.groups_encoded) \(.groups_encoded_inline) \(.groups_reused) \(.fragments_refused)"' "$T/last.out"; }
# fresh DIR: a fresh build of the store as it is now, parity in DIR/parity
fresh() { rm -rf "$1"; "$VBFSCTL" build "$S" "$1" --block-size 64K --parity 4+2 >/dev/null 2>&1; }

# ---- a fresh build: every group encoded while hashing -----------------------------
expect_status "build --parity 4+2" 0 "$VBFSCTL" build "$S" "$IDX" --block-size 64K --parity 4+2 --json
read -r G ENC INL REU REF <<<"$(groups)"
check "at least 8 groups ($G)" test "$G" -ge 8
expect_eq "fresh: every group encoded, all while hashing, none reused" "$G $G 0" "$ENC $INL $REU"
expect_eq "parity bytes: 2/4 of the full blocks plus the short stripes" "$(jq -r '.parity.parity_bytes' "$T/last.out")" \
	"$(stat -c %s "$P/parity.dat")"
cp -a "$P" "$T/parity.v1"; cp -a "$IDX" "$T/index.v1"

# ---- one file changed, same size: only its groups -----------------------------------
gen "$T/x" 1000 changed; dd if="$T/x" of="$S/f30" bs=1 seek=$((3 * K64 + 17)) conv=notrunc status=none
expect_status "rebuild in place after f30 changed" 0 "$VBFSCTL" build "$S" "$IDX" --parity 4+2 --json
read -r G2 ENC INL REU REF <<<"$(groups)"
expect_eq "one file hashed" 1 "$(jq -r .files_hashed "$T/last.out")"
expect_eq "same groups" "$G" "$G2"
check "at most 3 groups encoded (f30's full blocks: 1 or 2 groups; the short group): $ENC" test "$ENC" -ge 1 -a "$ENC" -le 3
expect_eq "the others reused, none refused" "$((G - ENC)) 0" "$REU $REF"
fresh "$T/fresh1"
check "parity.dat is byte for byte a fresh build's" cmp "$P/parity.dat" "$T/fresh1/parity/parity.dat"
check "parity.idx too" cmp "$P/parity.idx" "$T/fresh1/parity/parity.idx"

# ---- one file grew (other block count), into a new index with --reuse --------------
gen "$T/x" $((3 * K64 + 5)) grown; cat "$T/x" >>"$S/f45"
expect_status "build --reuse INDEX into a new index" 0 "$VBFSCTL" build "$S" "$T/index2" --reuse "$IDX" \
	--parity 4+2 --json
read -r G3 ENC INL REU REF <<<"$(groups)"
expect_eq "one file hashed" 1 "$(jq -r .files_hashed "$T/last.out")"
check "the groups from f45 on until the cut is back in step re-encoded ($ENC of $G3), the rest reused" \
	test "$ENC" -ge 1 -a "$ENC" -le 7 -a "$REU" -eq $((G3 - ENC)) -a "$REU" -ge 3
fresh "$T/fresh2"
check "parity.dat is byte for byte a fresh build's" cmp "$T/index2/parity/parity.dat" "$T/fresh2/parity/parity.dat"

# ---- a damaged old fragment is never copied: its group is encoded again ---------------
flip_byte "$T/index2/parity/parity.dat" 100    # group 0, stripe 0, parity fragment 0
gen "$T/x" 500 last; dd if="$T/x" of="$S/f60" bs=1 seek=9 conv=notrunc status=none   # far from group 0
expect_status "rebuild in place over a damaged old fragment" 0 "$VBFSCTL" build "$S" "$T/index2" --parity 4+2 --json
read -r G4 ENC INL REU REF <<<"$(groups)"
expect_eq "one fragment refused" 1 "$REF"
check "group 0 encoded again with f60's ($ENC)" test "$ENC" -ge 2 -a "$ENC" -le 4
check "... says so" grep -q "did not match their digest" "$T/last.err"
fresh "$T/fresh3"
check "parity.dat is byte for byte a fresh build's (the damaged byte not carried)" \
	cmp "$T/index2/parity/parity.dat" "$T/fresh3/parity/parity.dat"

# ---- old parity that does not match its index is not used at all ---------------------
cp "$T/parity.v1/parity.idx" "$T/index2/parity/parity.idx"   # valid format, another build
gen "$T/x" 500 again; dd if="$T/x" of="$S/f02" bs=1 seek=9 conv=notrunc status=none
expect_status "rebuild over a forged old parity.idx" 0 "$VBFSCTL" build "$S" "$T/index2" --parity 4+2 --json
read -r G5 ENC INL REU REF <<<"$(groups)"
expect_eq "nothing reused, everything encoded" "$G5 0" "$ENC $REU"
check "... says why" grep -q "does not match the index" "$T/last.err"
expect_status "--reuse-parity without --reuse" 2 "$VBFSCTL" build "$S" "$T/index3" --parity 4+2 --reuse-parity "$P"
expect_status "--reuse-parity pointing at the old index's parity" 0 "$VBFSCTL" build "$S" "$T/index3" \
	--reuse "$T/index.v1" --reuse-parity "$T/parity.v1" --parity 4+2 --json
read -r G6 ENC INL REU REF <<<"$(groups)"
check "some groups taken from it ($REU)" test "$REU" -ge 1

# ---- heals from incremental parity, byte for byte --------------------------------------
cp -a "$S" "$T/orig"
IDX=$T/index2 P=$T/index2/parity
dd if=/dev/zero of="$S/f20" bs=$K64 seek=0 count=10 conv=notrunc status=none   # a 10-block burst
flip_byte "$S/f05" $((2 * K64 + 99))
flip_byte "$S/f33" 5
flip_byte "$S/f45" $((11 * K64 + 7))       # a block of the part that grew
flip_byte "$S/f59" $((10 * K64 + 3))       # its short last block
expect_status "verify --parity" 1 "$VBFSCTL" verify "$S" "$IDX" --parity "$P" --json
expect_eq "verify: damaged / repairable / unrecoverable" "14 14 0" \
	"$(jq -r '"\(.damaged_blocks) \(.repairable) \(.unrecoverable)"' "$T/last.out")"
expect_status "repair --output" 0 "$VBFSCTL" repair "$S" "$IDX" --parity "$P" --output "$T/out"
for f in f20 f05 f33 f45 f59; do
	check "$f repaired byte for byte" cmp "$T/out/$f" "$T/orig/$f"
done
mkdir -p "$M"
vbfs_mount "$S" "$IDX" "$M" "parity=$P" || { fail "mount"; finish; exit 1; }
check "f20 (a 10-block burst) read through the mount is the original" cmp "$M/f20" "$T/orig/f20"
check "f59 (its short block) read through the mount is the original" cmp "$M/f59" "$T/orig/f59"
vbfs_umount "$M"
finish
