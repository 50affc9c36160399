#!/usr/bin/env bash
# core_blocksize.sh - EIO exactly at the damaged block for block sizes
# other than 1 MiB, under several mount tunings.
#
# 4 KiB blocks are smaller than the kernel's 128 KiB read requests: a
# request that covers a bad block fails whole, and the kernel must still
# get every good neighbour when it asks for that page alone.  4 MiB blocks
# are bigger than a request: every piece of a bad block fails, the blocks
# around it do not.  Each variant runs with the defaults, without
# read-ahead verification, and with a 1 MiB block cache and no kernel
# readahead.
. "$(dirname "$0")/lib.sh"
need jq
quiet() { "$@" >/dev/null 2>&1; }

KiB=1024 MiB=1048576

# variant NAME BLOCK_SIZE FILE_MIB BAD_BLOCKS...: index a clean store with
# BLOCK_SIZE, damage one byte in each BAD block of a copy, read every block
# alone through the mount with each tuning.
variant() {
	local name=$1 bs=$2 mib=$3; shift 3
	local bad=" $* " dir=$T/$name b nblocks opts k
	make_file "$dir/store/f.bin" "$mib" "$name"
	expect_status "$name: build --block-size $bs" 0 "$VBFSCTL" build "$dir/store" "$dir/index" --block-size "$bs"
	cp -a "$dir/store" "$dir/dmg"
	for b in "$@"; do
		flip_byte "$dir/dmg/f.bin" $((b * bs + bs / 2))
	done
	nblocks=$((mib * MiB / bs))
	local want=()   # the clean store's per-block digests, computed once
	for ((k = 0; k < nblocks; k++)); do
		want[k]=$(dd if="$dir/store/f.bin" bs="$bs" skip="$k" count=1 status=none | sha256sum)
	done
	for opts in "" readahead=0 cache_mb=1,read_ahead_kb=0; do
		local M=$dir/mnt${opts:+-${opts//[,=]/-}} wrong=0 out st
		rm -f "$M.log"
		vbfs_mount "$dir/dmg" "$dir/index" "$M" "$opts" || { fail "$name: mount $opts"; continue; }
		for ((k = nblocks - 1; k >= 0; k--)); do
			dd if="$M/f.bin" of="$dir/blk" bs="$bs" skip="$k" count=1 iflag=fullblock status=none 2>/dev/null
			st=$?
			out=$(sha256sum <"$dir/blk")
			if [[ $bad == *" $k "* ]]; then
				[ "$st" != 0 ] || { wrong=$((wrong + 1)); echo "$name $opts: block $k read, wanted EIO" >&2; }
			elif [ "$st" != 0 ] || [ "$out" != "${want[k]}" ]; then
				wrong=$((wrong + 1)); echo "$name $opts: block $k: exit $st or wrong bytes" >&2
			fi
		done
		expect_eq "$name ${opts:-defaults}: EIO exactly at blocks$bad, $nblocks blocks" 0 "$wrong"
		# A whole-file read fails, and a large read that starts in a good
		# block and ends in a bad one fails too.
		check "$name ${opts:-defaults}: cat fails" bash -c "! cat '$M/f.bin' >/dev/null 2>&1"
		vbfs_umount "$M"
		expect_eq "$name ${opts:-defaults}: exit 1" 1 "$VBFS_STATUS"
		expect_eq "$name ${opts:-defaults}: logged blocks" "$(echo $*)" \
			"$(jq -r 'select(.event == "corrupt") | .block' "$M.log" | sort -nu | xargs)"
		expect_eq "$name ${opts:-defaults}: offsets" "$(for b in "$@"; do echo $((b * bs)); done | xargs)" \
			"$(jq -r 'select(.event == "corrupt") | .offset' "$M.log" | sort -nu | xargs)"
	done
	expect_status "$name: verify" 1 "$VBFSCTL" verify "$dir/dmg" "$dir/index" --json
	expect_eq "$name: verify finds the same blocks" "$(echo $*)" \
		"$(jq -r '.events[] | .block' "$T/last.out" | sort -nu | xargs)"
}

variant small 4096 1 0 37 38 200 255          # 256 blocks of 4 KiB
variant mid 65536 2 1 16 31                    # 32 blocks of 64 KiB
variant large 4194304 12 1                        # 3 blocks of 4 MiB
finish
