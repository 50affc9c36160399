#!/bin/bash
# drill_sample.sh - `vbfsctl sample` through real vbfs mounts: a clean store
# passes, a damaged one fails naming file and offset, --seed repeats the
# choice, the private mount and the scratch directory never outlive the run.
. "$(dirname "$0")/lib.sh"

export VBFS_BIN
export TMPDIR="$T/tmp"          # where the drill's work directories go
mkdir -p "$TMPDIR"

S=$T/store I=$T/index
make_file "$S/db/app.dump" 5
make_file "$S/db/other.dump" 3
make_file "$S/wal/000000010000000000000001" 2
make_file "$S/wal/000000010000000000000002" 1
make_file "$S/base/big.tar" 6
printf 'small text\n' >"$S/notes.txt"
: >"$S/empty"
mkdir -p "$S/etc" && printf '%s\n' a b c >"$S/etc/conf"
ln -s db/app.dump "$S/latest"
NFILES=8
$VBFSCTL build "$S" "$I" >/dev/null 2>&1 || { fail "build the index"; finish; exit 1; }

leftovers() {   # nothing mounted under $T, nothing left in $TMPDIR
	local m
	m=$(awk -v t="$T" 'index($2, t) == 1' /proc/mounts | wc -l)
	[ "$m" = 0 ] && [ -z "$(ls -A "$TMPDIR")" ]
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$2"; }

# --- a clean store passes ---------------------------------------------------
expect_status "clean sample" 0 $VBFSCTL sample --store "$S" --index "$I" -n 5 --seed 42 --json
cp "$T/last.out" "$T/clean.json"
expect_eq "clean: ok" "True" "$(json 'd["ok"]' "$T/clean.json")"
expect_eq "clean: seed echoed" "42" "$(json 'd["seed"]' "$T/clean.json")"
expect_eq "clean: 5 files, all ok" "5 5" \
	"$(json 'len(d["files"]), sum(f["ok"] for f in d["files"])' "$T/clean.json" | tr -d '(),')"
expect_eq "clean: bytes = sum of sizes" "True" \
	"$(json 'd["bytes"] == sum(f["size"] for f in d["files"])' "$T/clean.json")"
expect_eq "clean: no reasons" "0" "$(json 'sum("reason" in f for f in d["files"])' "$T/clean.json")"
expect_eq "clean: sizes match the store" "True" "$(/usr/bin/python3 -c '
import json, os, sys
d = json.load(open(sys.argv[1]))
print(all(os.path.getsize(os.path.join(sys.argv[2], f["path"])) == f["size"] for f in d["files"]))
' "$T/clean.json" "$S")"
check "clean: no mount or scratch left" leftovers

# human output: one line per file, the rate, the verdict; seed on stderr
expect_status "clean sample, text" 0 $VBFSCTL sample --store "$S" --index "$I" -n 3 --seed 42
check "text: 3 OK lines" test "$(grep -c '^  OK    ' "$T/last.err")" = 3
check "text: throughput line" grep -q '^restored .* in .* s: .*/s$' "$T/last.err"
check "text: verdict" grep -qx 'sample: MET: 3 of 3 files restored and verified' "$T/last.err"
check "text: seed on stderr" grep -q 'rerun with --seed 42' "$T/last.err"
expect_eq "text: stdout stays empty (only --json writes there)" "" "$(cat "$T/last.out")"

# --- the same seed picks the same files; no seed prints the one used --------
$VBFSCTL sample --store "$S" --index "$I" -n 4 --seed 7 --json >"$T/a.json" 2>/dev/null
$VBFSCTL sample --store "$S" --index "$I" -n 4 --seed 7 --json >"$T/b.json" 2>/dev/null
$VBFSCTL sample --store "$S" --index "$I" -n 4 --seed 8 --json >"$T/c.json" 2>/dev/null
A=$(json '[f["path"] for f in d["files"]]' "$T/a.json")
expect_eq "same seed, same files" "$A" "$(json '[f["path"] for f in d["files"]]' "$T/b.json")"
check "another seed, another choice" test "$A" != "$(json '[f["path"] for f in d["files"]]' "$T/c.json")"
$VBFSCTL sample --store "$S" --index "$I" -n 4 --json >"$T/r.json" 2>"$T/r.err"
SEED=$(sed -n 's/.*rerun with --seed \([0-9]*\)).*/\1/p' "$T/r.err")
check "seed printed when not given" test -n "$SEED"
expect_eq "printed seed = JSON seed" "$SEED" "$(json 'd["seed"]' "$T/r.json")"
$VBFSCTL sample --store "$S" --index "$I" -n 4 --seed "$SEED" --json >"$T/r2.json" 2>/dev/null
expect_eq "rerun with the printed seed repeats the choice" \
	"$(json '[f["path"] for f in d["files"]]' "$T/r.json")" \
	"$(json '[f["path"] for f in d["files"]]' "$T/r2.json")"
$VBFSCTL sample --store "$S" --index "$I" -n 100 --seed 1 --json >"$T/all.json" 2>/dev/null
expect_eq "-n larger than the index: every regular file once" "$NFILES $NFILES" \
	"$(json 'len(d["files"]), len(set(f["path"] for f in d["files"]))' "$T/all.json" | tr -d '(),')"
expect_eq "--rto projection: files x per-file cost + bytes / bulk rate" "True" "$($VBFSCTL sample --store "$S" --index "$I" \
	-n 2 --seed 3 --rto 1h --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin); m = d["projection"]
p = m["files"] * m["per_file_seconds"] + m["bytes"] / m["bytes_per_second"]
print(d["rto_met"] is True and d["verdict"] == "met" and m["model"] == "files_and_bytes"
      and m["files"] == d["indexed_files"] and m["bytes"] == d["indexed_bytes"]
      and m["rate_measured_on_bytes"] >= 8 << 20 and abs(d["projected_seconds"] - p) <= 1e-6 * p)')"
expect_status "--rto 0.000001 cannot be met: exit 1" 1 $VBFSCTL sample --store "$S" --index "$I" -n 2 --seed 3 --rto 0.000001
check "--rto 1 us: says missed" grep -q '; RTO 1e-06 s: missed$' "$T/last.err"
check "--rto 1 us: verdict MISSED" grep -q '^sample: MISSED: projected .* exceeds the 1e-06 s RTO$' "$T/last.err"

# --- --keep keeps byte-exact copies ------------------------------------------
expect_status "--keep" 0 $VBFSCTL sample --store "$S" --index "$I" -n 100 --seed 1 --keep
KEPT=$(sed -n 's/^sample: scratch kept in //p' "$T/last.err")
check "--keep: scratch path printed" test -d "$KEPT"
check "--keep: no mount left" test -z "$(awk -v t="$T" 'index($2, t) == 1' /proc/mounts)"
expect_eq "--keep: copy is byte-exact" "" "$(cmp "$KEPT"/*-app.dump "$S/db/app.dump" 2>&1)"
expect_eq "--keep: $NFILES copies" "$NFILES" "$(ls "$KEPT" | wc -l)"
rm -rf "$TMPDIR"/* 

# --- a damaged store fails, naming the file and the offset -------------------
D=$T/damaged
cp -a "$S" "$D"
flip_byte "$D/db/app.dump" $((3 * 1048576 + 17))
truncate -s $((2 * 1048576 + 4096)) "$D/base/big.tar"
rm "$D/wal/000000010000000000000002"
expect_status "damaged sample fails" 1 $VBFSCTL sample --store "$D" --index "$I" -n 100 --seed 1 --json
cp "$T/last.out" "$T/bad.json"; cp "$T/last.err" "$T/bad.err"
reason() { json "[f.get('reason') for f in d['files'] if f['path'] == '$1'][0]" "$T/bad.json"; }
expect_eq "corrupt block: EIO at its start" "EIO at byte offset 3145728" "$(reason db/app.dump)"
expect_eq "corrupt block: offset key" "3145728" \
	"$(json "[f.get('offset') for f in d['files'] if f['path'] == 'db/app.dump'][0]" "$T/bad.json")"
expect_eq "truncated file: EIO at the short block" "EIO at byte offset 2097152" "$(reason base/big.tar)"
expect_eq "deleted file: EIO at 0" "EIO at byte offset 0" "$(reason wal/000000010000000000000002)"
expect_eq "the others pass" "$((NFILES - 3))" "$(json 'sum(f["ok"] for f in d["files"])' "$T/bad.json")"
expect_eq "ok false" "False" "$(json 'd["ok"]' "$T/bad.json")"
# (the mount's readahead may log a damaged block beyond the one read: >= 3)
check "damage events counted" test "$(json 'd["events"]' "$T/bad.json")" -ge 3
expect_eq "damaged files named in the events" \
	"base/big.tar db/app.dump wal/000000010000000000000002" \
	"$(sed -n 's/^sample: damage: [a-z]* \([^ ]*\).*/\1/p' "$T/bad.err" | sort -u | xargs)"
check "event on stderr: path, block, offset" \
	grep -qx 'sample: damage: corrupt db/app.dump block 3 offset 3145728' "$T/bad.err"
check "damaged: no mount or scratch left" leftovers
expect_status "damaged sample, text" 1 $VBFSCTL sample --store "$D" --index "$I" -n 100 --seed 1
check "text: FAIL line names file and offset" \
	grep -qx '  FAIL  db/app.dump: EIO at byte offset 3145728' "$T/last.err"
check "text: verdict" grep -qx 'sample: DAMAGED: 3 of 8 files' "$T/last.err"

# --- --mount: a running mount, index read from its xattr ---------------------
M=$T/mnt
if vbfs_mount "$S" "$I" "$M"; then
	expect_status "--mount sample" 0 $VBFSCTL sample --mount "$M" -n 3 --seed 5 --json
	expect_eq "--mount: same choice as --store for the same seed" \
		"$($VBFSCTL sample --store "$S" --index "$I" -n 3 --seed 5 --json 2>/dev/null \
			| /usr/bin/python3 -c 'import json,sys; print([f["path"] for f in json.load(sys.stdin)["files"]])')" \
		"$(json '[f["path"] for f in d["files"]]' "$T/last.out")"
	check "--mount: the mount stays up" mountpoint -q "$M"
	vbfs_umount "$M"
	expect_eq "--mount: daemon saw no damage" "0" "$VBFS_STATUS"
else
	fail "mount for --mount test"
fi
M2=$T/mnt-damaged
if vbfs_mount "$D" "$I" "$M2"; then
	expect_status "--mount on a damaged store" 1 $VBFSCTL sample --mount "$M2" -n 100 --seed 1 --json
	cp "$T/last.out" "$T/bad.json"
	expect_eq "--mount: EIO named" "EIO at byte offset 3145728" "$(reason db/app.dump)"
	check "--mount: damage counted from the mount's counters" \
		test "$(json 'd["events"]' "$T/bad.json")" -ge 3
	vbfs_umount "$M2"
	expect_eq "--mount: the daemon saw the damage too" "1" "$VBFS_STATUS"
else
	fail "mount the damaged store"
fi
expect_status "--mount on a plain directory without --index" 2 $VBFSCTL sample --mount "$T" -n 1
check "plain directory: says why" grep -q 'not a vbfs mount' "$T/last.err"

# --- Ctrl-C in the middle of a copy ------------------------------------------
# The daemon is frozen (SIGSTOP) while the drill reads through it, so the
# drill is surely mid-copy when SIGINT comes; then the daemon is thawed.
make_file "$T/bigstore/huge.bin" 192
$VBFSCTL build "$T/bigstore" "$T/bigindex" >/dev/null 2>&1
interrupted=no
for attempt in 1 2 3; do
	$VBFSCTL sample --store "$T/bigstore" --index "$T/bigindex" -n 1 --seed 1 \
		>"$T/int.out" 2>"$T/int.err" &
	SP=$!
	_PIDS+=("$SP")
	DP=
	for i in $(seq 1 500); do
		DP=$(pgrep -f -- "-o index=$T/bigindex,log=$TMPDIR/" | head -1)
		[ -n "$DP" ] && [ -n "$(ls "$TMPDIR"/*/scratch/ 2>/dev/null)" ] && break
		sleep 0.01
	done
	[ -n "$DP" ] && kill -STOP "$DP"
	if kill -0 "$SP" 2>/dev/null && [ -n "$DP" ]; then
		sleep 0.3
		kill -INT "$SP"
		sleep 0.3
		kill -CONT "$DP"
		wait "$SP"; RC=$?
		interrupted=yes
		break
	fi
	[ -n "$DP" ] && kill -CONT "$DP"
	wait "$SP"
	rm -rf "${TMPDIR:?}"/*
done
expect_eq "interrupt: caught the drill mid-copy" "yes" "$interrupted"
expect_eq "interrupt: exit 2" "2" "${RC:-}"
check "interrupt: says so" grep -q 'sample: interrupted by SIGINT: mount and scratch removed' "$T/int.err"
check "interrupt: no report" test ! -s "$T/int.out"
check "interrupt: no mount or scratch left" leftovers
check "interrupt: the daemon is gone" test ! -d "/proc/$DP"

# --- usage and operational errors: exit 2, one line --------------------------
expect_status "no source" 2 $VBFSCTL sample -n 3
expect_status "--store without --index" 2 $VBFSCTL sample --store "$S"
expect_status "-n 0" 2 $VBFSCTL sample --store "$S" --index "$I" -n 0
expect_status "-n x" 2 $VBFSCTL sample --store "$S" --index "$I" -n x
expect_status "--seed -1" 2 $VBFSCTL sample --store "$S" --index "$I" --seed -1
expect_status "bad --rto" 2 $VBFSCTL sample --store "$S" --index "$I" --rto soon
expect_status "missing store" 2 $VBFSCTL sample --store "$T/nope" --index "$I"
expect_status "not an index" 2 $VBFSCTL sample --store "$S" --index "$S"
expect_eq "one error line" "1" "$(wc -l <"$T/last.err")"
expect_status "--help" 0 $VBFSCTL sample --help
check "no mount or scratch left at the end" leftovers

finish
