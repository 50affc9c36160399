# scripts/bench.d/heal.sh - the `heal` section of scripts/bench: parity
# cost and healing speed, side by side with the same work without them.
# Sourced by scripts/bench after its helpers (def, put, timeit, mbps,
# start_mount, stop_mount, random_stream); heal_run is one run.
#
#   heal.build-plain / heal.build-parity   vbfsctl build --full of D1, fresh
#       index, without and with --parity 32+2 (MB/s of D1)
#   heal.parity-after                     the part of build --parity after the
#       index is written (groups not encoded while hashing, parity.idx,
#       sealing), ms
#   heal.parity-overhead                  parity bytes per store byte (%)
#   heal.first-plain / heal.first-parity / heal.first-replica
#       first read of D1 through a fresh mount, without sources, with
#       -o parity= and with -o replica= (clean data: nothing to heal);
#       two rounds a run, the order rotated, so the three interleave
#   heal.one-block                        a damaged block, the only one of its
#       stripe, read through the mount (O_DIRECT), rebuilt from parity
#       (page cache), ms; eight a run, beside
#   heal.clean-block                      a clean block read the same way in
#       the same mount, ms; the two alternate
#   heal.one-block-cpu / heal.clean-block-cpu  the daemon's CPU time for
#       each (all its threads, from /proc/PID/task/*/schedstat), ms
#   heal.healed-read                      a 256 MiB file with a burst of 16
#       damaged blocks (2 per stripe) read whole through the mount, MB/s
HEAL_KM=32+2
# Read in this order, none right after its predecessor, so the mount's
# look-ahead never heals the next one before it is timed.
HEAL_ONE_BLOCKS="100 102 104 106 101 103 105 107"
HEAL_CLEAN_BLOCKS="10 12 14 16 11 13 15 17"

# The daemon's CPU time so far, in ns (every thread).
daemon_cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { print t + 0 }'; }

# heal_block KEY BLOCK: time one 1 MiB O_DIRECT read of block BLOCK of the
# heal mount (ms), and the daemon's CPU time for it (KEY-cpu, ms).
heal_block() {
	local c0 c1
	c0=$(daemon_cpu_ns "$MPID")
	if timeit dd if="$M/heal/h.bin" of=/dev/null bs=1M skip="$2" count=1 iflag=direct status=none; then
		c1=$(daemon_cpu_ns "$MPID")
		put "$1" "$(awk -v t="$T" 'BEGIN { printf "%.1f", t * 1000 }')"
		put "$1-cpu" "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
	else
		note "$1: block $2 could not be read"
	fi
}

heal_setup() {
	HS=$W/heal-store
	if [ ! -e "$HS/.done" ]; then
		rm -rf "$HS"; mkdir -p "$HS"
		random_stream heal | head -c $((256 * 1048576)) >"$HS/h.bin"
		touch "$HS/.done"
	fi
	rm -rf "$IDX/heal" "$W/heal-parity" "$W/heal-damaged"
	"$VBFSCTL" build "$HS" "$IDX/heal" --parity "$HEAL_KM" --parity-dir "$W/heal-parity" >/dev/null 2>&1 ||
		die "vbfsctl build --parity of the heal store failed"
	rm -rf "$W/heal-one"
	cp -a "$HS" "$W/heal-damaged"
	rm -f "$W/heal-damaged/.done"
	cp -a "$W/heal-damaged" "$W/heal-one"
	# Eight damaged blocks, each the only one of its stripe (256 blocks at
	# 32+2: one group of 8 stripes, block b in stripe b mod 8).
	local b
	for b in $HEAL_ONE_BLOCKS; do
		printf 'X' | dd of="$W/heal-one/h.bin" bs=1 seek=$((b * 1048576 + 17)) conv=notrunc status=none
	done
	mkdir -p "$W/heal-replica"   # -o replica= for the clean read: never read there
	# A burst of 16 damaged blocks: with 32+2 and 256 blocks (one group of
	# 8 stripes of 32, block b in stripe b mod 8) it costs each stripe 2,
	# its whole budget.
	for b in $(seq 100 115); do
		printf 'X' | dd of="$W/heal-damaged/h.bin" bs=1 seek=$((b * 1048576 + 17)) conv=notrunc status=none
	done
	HEAL_LOG=$BUILD/bench-heal-events.jsonl
}

heal_build() {   # heal_build KEY [parity args...]: a fresh full build of D1
	local key=$1; shift
	rm -rf "$IDX/heal-d1" "$W/heal-d1-parity"
	def "$key" d1 vbfsctl build MB/s "vbfsctl build --full of D1, fresh index $*"
	if timeit "$VBFSCTL" build --full "$STORE1" "$IDX/heal-d1" "$@"; then
		put "$key" "$(mbps "$D1_BYTES" "$T")"
	fi
}

heal_run() {
	heal_build heal.build-plain
	heal_build heal.build-parity --parity "$HEAL_KM" --parity-dir "$W/heal-d1-parity"
	local js
	rm -rf "$IDX/heal-d1" "$W/heal-d1-parity"
	js=$("$VBFSCTL" build --full "$STORE1" "$IDX/heal-d1" --parity "$HEAL_KM" \
		--parity-dir "$W/heal-d1-parity" --json 2>/dev/null)
	def heal.parity-after d1 vbfsctl parity ms "build --parity $HEAL_KM: the part after the index is written (a fresh build encodes every group while hashing)"
	put heal.parity-after "$(jq -r '.parity | .seconds * 1000 | . * 10 | floor / 10' <<<"$js")"
	def heal.parity-overhead d1 vbfsctl overhead % "parity bytes per byte of D1 at $HEAL_KM"
	put heal.parity-overhead "$(jq -r '.parity | .parity_bytes * 100 / .data_bytes | . * 100 | floor / 100' <<<"$js")"

	# Clean first reads: without sources, with parity, with a replica; two
	# rounds, the order rotated, each a fresh mount of the same file.
	local opt round order
	def heal.first-plain d1 vbfs read MB/s "first read of D1, fresh mount"
	def heal.first-parity d1 vbfs read MB/s "first read of D1, fresh mount with -o parity (nothing to heal)"
	def heal.first-replica d1 vbfs read MB/s "first read of D1, fresh mount with -o replica (nothing to heal)"
	cat "$D1" >/dev/null
	for round in 1 2; do
		case $((${HEAL_ROUND:=0} % 3)) in
		0) order="plain parity replica" ;; 1) order="parity replica plain" ;; *) order="replica plain parity" ;;
		esac
		HEAL_ROUND=$((HEAL_ROUND + 1))
		for opt in $order; do
			local extra=""
			[ $opt = parity ] && extra=",parity=$W/heal-d1-parity"
			[ $opt = replica ] && extra=",replica=$W/heal-replica"
			if start_mount "$M/heal" "$M/heal" "$VBFS" -f -o "index=$IDX/heal-d1,log=$HEAL_LOG$extra" "$STORE1" "$M/heal"; then
				measure "heal.first-$opt" d1 vbfs "" "$D1_BYTES" read_file "$M/heal/d1.bin"
				stop_mount "$M/heal"
			fi
		done
	done

	cat "$W/heal-one/h.bin" "$W/heal-damaged/h.bin" "$W/heal-parity/parity.dat" >/dev/null   # page cache
	if start_mount "$M/heal" "$M/heal" "$VBFS" -f -o "index=$IDX/heal,log=$HEAL_LOG,parity=$W/heal-parity" \
		"$W/heal-one" "$M/heal"; then
		def heal.one-block heal vbfs heal ms "read one damaged 1 MiB block (O_DIRECT) through the mount, rebuilt from $HEAL_KM parity"
		def heal.clean-block heal vbfs read ms "read one clean 1 MiB block (O_DIRECT) through the same mount"
		def heal.one-block-cpu heal vbfs heal ms "the daemon's CPU time for one damaged block rebuilt from parity"
		def heal.clean-block-cpu heal vbfs read ms "the daemon's CPU time for one clean block"
		# a clean block first: the figures are reads, not the mount's first open
		dd if="$M/heal/h.bin" of=/dev/null bs=1M count=1 iflag=direct status=none
		local -a one=($HEAL_ONE_BLOCKS) clean=($HEAL_CLEAN_BLOCKS)
		local i
		for i in "${!one[@]}"; do
			heal_block heal.clean-block "${clean[$i]}"
			heal_block heal.one-block "${one[$i]}"
		done
		stop_mount "$M/heal"
	fi
	if start_mount "$M/heal" "$M/heal" "$VBFS" -f -o "index=$IDX/heal,log=$HEAL_LOG,parity=$W/heal-parity" \
		"$W/heal-damaged" "$M/heal"; then
		measure heal.healed-read heal vbfs "256 MiB with 16 damaged blocks healed from parity, fresh mount" \
			$((256 * 1048576)) read_file "$M/heal/h.bin"
		stop_mount "$M/heal"
	fi
}

heal_targets() {
	ratio "build time with parity / without" heal.build-plain heal.build-parity 1.2 max
	ratio "first read with -o parity / without" heal.first-parity heal.first-plain 0.9
	ratio "first read with -o replica / without" heal.first-replica heal.first-plain 0.9
	local ov ms clean cpu
	ov=$(get heal.parity-overhead) ms=$(get heal.one-block) clean=$(get heal.clean-block) cpu=$(get heal.one-block-cpu)
	[ -n "$ov" ] && printf '%-44s %8s%%  target <= 7%%   %s\n' "parity bytes per store byte ($HEAL_KM)" "$ov" \
		"$(awk -v v="$ov" 'BEGIN { print (v <= 7) ? "met" : "MISSED" }')"
	[ -n "$ms" ] && printf '%-44s %8sms target <= 50ms  %s (a clean block: %s ms; daemon CPU %s ms; load %s)\n' \
		"one block healed from parity" "$ms" \
		"$(awk -v v="$ms" 'BEGIN { print (v <= 50) ? "met" : "MISSED" }')" "$clean" "$cpu" \
		"$(cut -d' ' -f1-3 /proc/loadavg)"
}
