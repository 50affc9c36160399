# scripts/bench.d/heal.sh - the `heal` section of scripts/bench: parity
# cost and healing speed, side by side with the same work without them.
# Sourced by scripts/bench after its helpers (def, put, timeit, mbps,
# start_mount, stop_mount, random_stream); heal_run is one run.
#
#   heal.build-plain / heal.build-parity   vbfsctl build --full of D1, fresh
#       index, without and with --parity 32+2 (MB/s of D1)
#   heal.parity-encode                    the parity pass alone (MB/s of data)
#   heal.parity-overhead                  parity bytes per store byte (%)
#   heal.first-plain / heal.first-parity  first read of D1 through a fresh
#       mount, without and with -o parity= (clean data: nothing to heal)
#   heal.one-block                        the only damaged block of its stripe
#       read through the mount, rebuilt from parity (page cache), ms
#   heal.healed-read                      a 256 MiB file with a burst of 16
#       damaged blocks (2 per stripe) read whole through the mount, MB/s
HEAL_KM=32+2

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
	cp -a "$W/heal-damaged" "$W/heal-one"   # one damaged block: the common case
	printf 'X' | dd of="$W/heal-one/h.bin" bs=1 seek=$((100 * 1048576 + 17)) conv=notrunc status=none
	# A burst of 16 damaged blocks: with 32+2 and 256 blocks (one group of
	# 8 stripes of 32, block b in stripe b mod 8) it costs each stripe 2,
	# its whole budget.
	local b
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
	def heal.parity-encode d1 vbfsctl parity MB/s "the parity pass of build --parity $HEAL_KM (reads D1, encodes, writes)"
	put heal.parity-encode "$(jq -r '.parity | .data_bytes / 1e6 / .seconds | . * 10 | floor / 10' <<<"$js")"
	def heal.parity-overhead d1 vbfsctl overhead % "parity bytes per byte of D1 at $HEAL_KM"
	put heal.parity-overhead "$(jq -r '.parity | .parity_bytes * 100 / .data_bytes | . * 100 | floor / 100' <<<"$js")"

	local opt
	for opt in plain parity; do
		local extra=""
		[ $opt = parity ] && extra=",parity=$W/heal-d1-parity"
		if start_mount "$M/heal" "$M/heal" "$VBFS" -f -o "index=$IDX/heal-d1,log=$HEAL_LOG$extra" "$STORE1" "$M/heal"; then
			measure "heal.first-$opt" d1 vbfs "first read of D1, fresh mount$([ $opt = parity ] && echo " with -o parity (nothing to heal)")" \
				"$D1_BYTES" read_file "$M/heal/d1.bin"
			stop_mount "$M/heal"
		fi
	done

	cat "$W/heal-one/h.bin" "$W/heal-damaged/h.bin" "$W/heal-parity/parity.dat" >/dev/null   # page cache
	if start_mount "$M/heal" "$M/heal" "$VBFS" -f -o "index=$IDX/heal,log=$HEAL_LOG,parity=$W/heal-parity" \
		"$W/heal-one" "$M/heal"; then
		def heal.one-block heal vbfs heal ms "read one damaged 1 MiB block through the mount, rebuilt from $HEAL_KM parity"
		# a clean block first: the figure is the heal, not the mount's first open
		dd if="$M/heal/h.bin" of=/dev/null bs=1M count=1 iflag=direct status=none
		if timeit dd if="$M/heal/h.bin" of=/dev/null bs=1M skip=100 count=1 iflag=direct status=none; then
			put heal.one-block "$(awk -v t="$T" 'BEGIN { printf "%.1f", t * 1000 }')"
		fi
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
	local ov ms
	ov=$(get heal.parity-overhead) ms=$(get heal.one-block)
	[ -n "$ov" ] && printf '%-44s %8s%%  target <= 7%%   %s\n' "parity bytes per store byte ($HEAL_KM)" "$ov" \
		"$(awk -v v="$ov" 'BEGIN { print (v <= 7) ? "met" : "MISSED" }')"
	[ -n "$ms" ] && printf '%-44s %8sms target <= 50ms  %s\n' "one block healed from parity" "$ms" \
		"$(awk -v v="$ms" 'BEGIN { print (v <= 50) ? "met" : "MISSED" }')"
}
