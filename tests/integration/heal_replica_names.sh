#!/usr/bin/env bash
# heal_replica_names.sh - any replica path reaches the mount: -o replica=
# takes "\:" for a colon and "\\" for a backslash in its list (after
# libfuse's own "\," and "\\"), replica= may be repeated, and the drills
# pass --replica/--parity paths with ':' ',' '\' escaped instead of
# refusing them.
#
# The store's a.bin (2 MiB) has block 1 flipped.  Replica ODD (named with a
# ':', a ',', a '\' and a space) has it good; replica H has block 1 damaged
# too, so with H first the log must show H refused, then ODD healing.
. "$(dirname "$0")/lib.sh"
need jq

MiB=1048576
S=$T/store IDX=$T/index M=$T/mnt H=$T/h
ODD="$T/site a:b,c\\d"          # a directory named 'site a:b,c\d'
PODD="$T/par:i,ty"               # parity directory with ':' and ','
make_file "$S/a.bin" 2
expect_status "build with parity" 0 "$VBFSCTL" build "$S" "$IDX" --parity 2+1 --parity-dir "$PODD"
cp -a "$S" "$T/orig"
mkdir -p "$ODD"
cp -a "$S/." "$ODD/"
cp -a "$S" "$H"
flip_byte "$S/a.bin" $((MiB + 10))
flip_byte "$H/a.bin" $((MiB + 20))
SUM=$(sha256sum <"$S/a.bin")
RO=$(realpath "$ODD") RH=$(realpath "$H")
EXP1=$(head -c $((2 * MiB)) "$T/orig/a.bin" | tail -c $MiB | sha256sum | cut -d' ' -f1)

# The -o form of the odd name: vbfs's "\\:" and "\\\\", libfuse's "\,".
ODD_OPT="$T/site a\\\\:b\\,c\\\\\\\\d"

events_of_block1() { jq -r 'select(.block == 1) | "\(.event) \(.repairable) \(.source)"' "$1" | paste -sd'|'; }

# ---- the escaped list form -----------------------------------------------------
vbfs_mount "$S" "$IDX" "$M" "replica=$ODD_OPT" || { fail "mount with replica=$ODD_OPT"; finish; exit 1; }
check "a.bin reads back exact from the replica named 'site a:b,c\\d'" cmp -s "$M/a.bin" "$T/orig/a.bin"
vbfs_umount "$M"
expect_eq "unmount exit status: the store is damaged" 1 "$VBFS_STATUS"
expect_eq "events: corrupt (repairable from the odd replica), then healed from it" \
	"corrupt true replica:$RO|healed null replica:$RO" "$(events_of_block1 "$M.log")"
expect_eq "healed event: offset, length, expected digest" "$MiB $MiB $EXP1" \
	"$(jq -r 'select(.event == "healed") | "\(.offset) \(.length) \(.expected)"' "$M.log")"

# ---- the documented form still splits at ':' (H first, then the odd one) --------
rm -f "$M.log"
vbfs_mount "$S" "$IDX" "$M" "replica=$H:$ODD_OPT" || { fail "mount with replica=H:ODD"; finish; exit 1; }
check "H:ODD: a.bin reads back exact" cmp -s "$M/a.bin" "$T/orig/a.bin"
vbfs_umount "$M"
expect_eq "H:ODD: H's copy refused, then healed from the odd replica" \
	"corrupt true replica:$RO|corrupt null replica:$RH|healed null replica:$RO" "$(events_of_block1 "$M.log")"

# ---- replica= repeated: the lists add up, in order -------------------------------
rm -f "$M.log"
vbfs_mount "$S" "$IDX" "$M" "replica=$H,replica=$ODD_OPT" || { fail "mount with replica= twice"; finish; exit 1; }
check "replica= twice: a.bin reads back exact" cmp -s "$M/a.bin" "$T/orig/a.bin"
vbfs_umount "$M"
expect_eq "replica= twice: H refused first, then healed from the second" \
	"corrupt true replica:$RO|corrupt null replica:$RH|healed null replica:$RO" "$(events_of_block1 "$M.log")"

# ---- an escape that escapes nothing, unescaped ':' in a path ------------------------
mount_refused "replica= ending in a backslash" "$S" "$IDX" \
	"vbfs: -o replica=: ends in a backslash that escapes nothing" "replica=$H\\\\"
# ... also when another replica= follows: the lone backslash must not
# escape the ':' the two values are joined with (one name "H:ODD").
mount_refused "replica= ending in a backslash, then replica= again" "$S" "$IDX" \
	"vbfs: -o replica=: ends in a backslash that escapes nothing" "replica=$H\\\\,replica=$ODD_OPT"
# Unescaped, the odd name splits at its ':' into two directories that do not exist.
mount_refused "replica= with the ':' unescaped" "$S" "$IDX" \
	"vbfs: replica $T/site a: No such file or directory" "replica=$T/site a:b\\,c\\\\\\\\d"

# ---- the drills pass such paths on, escaped ------------------------------------------
expect_status "rto --replica 'site a:b,c\\d': the restore succeeds, the verdict is damaged" 1 \
	"$VBFSCTL" rto --target 1h --store "$S" --index "$IDX" --name st --replica "$ODD" \
	--restore 'cmp "$VBFS_MOUNT/a.bin" '"'$T/orig/a.bin'" --json
expect_eq "rto --replica: verdict, healed from the odd replica" "damaged 1" \
	"$(jq -r --arg s "replica:$RO" '"\(.verdict) \(.healed_by_source[$s])"' "$T/last.out")"
check "rto --replica: says so" grep -qxF "rto: restored, 1 block healed: 1 from replica:$RO" "$T/last.err"
expect_status "sample --replica 'site a:b,c\\d'" 1 \
	"$VBFSCTL" sample --store "$S" --index "$IDX" -n 1 --seed 1 --replica "$ODD" --json
expect_eq "sample: a.bin ok, healed from the odd replica" "true 1" \
	"$(jq -r --arg s "replica:$RO" '"\([.files[].ok] | join(" ")) \(.healed_by_source[$s])"' "$T/last.out")"
expect_status "rto --parity 'par:i,ty': the restore succeeds, the verdict is damaged" 1 \
	"$VBFSCTL" rto --target 1h --store "$S" --index "$IDX" --name st --parity "$PODD" \
	--restore 'cmp "$VBFS_MOUNT/a.bin" '"'$T/orig/a.bin'" --json
expect_eq "rto --parity: healed from parity" "damaged 1" \
	"$(jq -r '"\(.verdict) \(.healed_by_source.parity)"' "$T/last.out")"
expect_eq "the store was not written" "$SUM" "$(sha256sum <"$S/a.bin")"
finish
