# scripts/bench.d/index_open.sh - the `open` section of scripts/bench: what
# opening an index costs now that every open copies one snapshot of it to a
# private file and walks the copy in a probe (doc/trust.md, "The index").
# Sourced by scripts/bench after its helpers (def, put, timeit, note).
#
#   open.1m-verify   vbfsctl verify of a one-file store whose index also
#       holds 1 M made-up block digests (1 TB at 1 MiB blocks): the open
#       (copy + root digest) is nearly all of it, s
#   open.1m-mount    the same index mounted: vbfs start to mounted, s
#   open.1m-size     data.mdb of that index, MB (the private copy is as big,
#       in $TMPDIR, while the index is open)
OPEN_DIGESTS=1000000

open_setup() {
	local tamper=$BUILD/tests/test_tamper
	OS=$W/open-store
	rm -rf "$OS" "$IDX/open-1m"
	mkdir -p "$OS"
	printf 'one small file\n' >"$OS/f"
	"$VBFSCTL" build "$OS" "$IDX/open-1m" >/dev/null 2>&1 || die "vbfsctl build of the open store failed"
	[ -x "$tamper" ] || die "no $tamper (the open section inflates an index with it)"
	"$tamper" "$IDX/open-1m" inflate=$OPEN_DIGESTS --reseal >/dev/null ||
		die "test_tamper inflate=$OPEN_DIGESTS failed"
	def open.1m-size index vbfsctl size MB "data.mdb with $OPEN_DIGESTS block digests (the private copy per open is as big)"
	put open.1m-size "$(awk -v b="$(stat -c %s "$IDX/open-1m/data.mdb")" 'BEGIN { printf "%.1f", b / 1e6 }')"
}

open_run() {
	def open.1m-verify index vbfsctl open s "vbfsctl verify of a 1-file store, index with $OPEN_DIGESTS digests (open: copy + root digest)"
	if timeit "$VBFSCTL" verify "$OS" "$IDX/open-1m" >/dev/null 2>&1; then
		put open.1m-verify "$(awk -v t="$T" 'BEGIN { printf "%.3f", t }')"
	fi
	def open.1m-mount index vbfs open s "vbfs start to mounted, index with $OPEN_DIGESTS digests"
	local s=$EPOCHREALTIME
	if start_mount "$M/open" "$M/open/f" "$VBFS" -f -o "index=$IDX/open-1m" "$OS" "$M/open"; then
		put open.1m-mount "$(awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f", e - s }')"
		stop_mount "$M/open"
	fi
}

open_targets() {
	local v
	v=$(get open.1m-verify)
	[ -n "$v" ] && printf '%-44s %8ss target <= 0.5s  %s\n' "open an index of 1 M digests (1 TB)" "$v" \
		"$(awk -v v="$v" 'BEGIN { print (v <= 0.5) ? "met" : "MISSED" }')"
}
