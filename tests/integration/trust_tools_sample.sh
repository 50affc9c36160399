#!/usr/bin/env bash
# trust_tools_sample.sh - `vbfsctl sample --rto` projects a full restore from
# files and bytes, and says how.
#
# The regression: the projection was indexed bytes / the sample's
# throughput, so a sample of small files (where each file's open and create
# dominate) passed its per-file cost off as a slow byte rate: 126.9 KiB
# sampled projected 111.3 s for a store `cp -a` restored in 9.6 s.  Now:
# files x per-file cost + bytes / bulk rate, the rate measured on bulk
# reads.  Here a store of 600 small files and two 64 MiB files; a sample
# of 10 small files must project within a factor 4 of a real `cp -a`
# through a fresh mount (the old model was off by more than 10x).
. "$(dirname "$0")/lib.sh"
need jq
PY=/usr/bin/python3
S=$T/store I=$T/index
mkdir -p "$S/small"
$PY - "$S/small" <<'PYEOF'
import os, sys
d = sys.argv[1]
for i in range(600):
    with open(os.path.join(d, "f%04d" % i), "wb") as f:
        f.write(os.urandom(1024 + (i * 37) % 3072))
PYEOF
make_file "$S/big.bin" 64
make_file "$S/big2.bin" 64 other
"$VBFSCTL" build "$S" "$I" >/dev/null 2>&1 || { fail "build"; finish; exit; }

expect_status "sample --rto" 0 "$VBFSCTL" sample --store "$S" --index "$I" -n 10 --seed 4 --rto 1h --json
cp "$T/last.out" "$T/s.json"; cp "$T/last.err" "$T/s.err"
expect_eq "the sample is 10 small files (the issue's case)" "10 0" \
	"$(jq -r '"\(.files | length) \([.files[] | select(.size > 4096)] | length)"' "$T/s.json")"
expect_eq "model: files and bytes, over every indexed file and byte" \
	"files_and_bytes 602 $(( 128 * 1048576 + $(find "$S/small" -type f -printf '%s\n' | awk '{s+=$1} END {print s}') ))" \
	"$(jq -r '.projection | "\(.model) \(.files) \(.bytes)"' "$T/s.json")"
expect_eq "the rate was measured on 16 MiB of the big file (read for the rate)" "16777216 16777216 big.bin" \
	"$(jq -r '.projection | "\(.rate_measured_on_bytes) \(.calibration_bytes) \(.calibration_path)"' "$T/s.json")"
expect_eq "projected = files x per-file + bytes / rate" "True" "$($PY -c '
import json, sys
d = json.load(open(sys.argv[1])); m = d["projection"]
p = m["files"] * m["per_file_seconds"] + m["bytes"] / m["bytes_per_second"]
print(abs(p - d["projected_seconds"]) <= 1e-6 * p)' "$T/s.json")"
check "text: says how the projection was made" \
	grep -q '^projected full restore of .* in 602 files: [0-9.]* s = 602 x [0-9.]* ms per file + .* at .*/s$' \
	<("$VBFSCTL" sample --store "$S" --index "$I" -n 10 --seed 4 --rto 1h 2>&1)
check "text: and from what" grep -q 'per-file cost: the median of 10 restored files; byte rate from 16.0 MiB read beyond files. first blocks, 16.0 MiB of them from big.bin, read for the rate); RTO 3600 s: met' \
	<("$VBFSCTL" sample --store "$S" --index "$I" -n 10 --seed 4 --rto 1h 2>&1)

# The real restore, through a fresh mount, right after a sample: the two
# timings are taken back to back; on a machine shared with other work a
# burst of load can land in one and not the other, so up to 3 pairs are
# tried and the best pair counts (a projection that is wrong by design, as
# the old one was, is wrong in every pair).
best= ; best_old=
for attempt in 1 2 3; do
	"$VBFSCTL" sample --store "$S" --index "$I" -n 10 --seed 4 --rto 1h --json >"$T/p.json" 2>/dev/null
	vbfs_mount "$S" "$I" "$T/mnt" || { fail "mount"; break; }
	rm -rf "$T/restored"; mkdir -p "$T/restored"
	t0=$(date +%s.%N)
	cp -a "$T/mnt/." "$T/restored/"
	t1=$(date +%s.%N)
	vbfs_umount "$T/mnt"
	real=$($PY -c "print($t1 - $t0)")
	proj=$(jq .projected_seconds "$T/p.json")
	old=$(jq '.indexed_bytes / .bytes_per_second' "$T/p.json")
	ratio=$($PY -c "print(max($proj / $real, $real / $proj))")
	echo "# pair $attempt: cp -a restored the store in $real s; projected $proj s (x$ratio); the old model: $old s"
	if [ -z "$best" ] || $PY -c "import sys; sys.exit(0 if $ratio < $best else 1)"; then
		best=$ratio; best_old=$($PY -c "print($old / $real)")
	fi
	$PY -c "import sys; sys.exit(0 if $ratio <= 2 else 1)" && break
done
expect_eq "the projection is within a factor 4 of the real restore (best pair: x$best)" "True" \
	"$($PY -c "print($best <= 4)")"
expect_eq "(the old model was not: more than 10x too long; x$best_old)" "True" "$($PY -c "print($best_old > 10)")"

# A store where every file fits in one block: per-file cost only.
mkdir -p "$T/tiny"; for i in 1 2 3 4 5; do printf 'tiny %s\n' "$i" >"$T/tiny/t$i"; done
"$VBFSCTL" build "$T/tiny" "$T/tiny-idx" >/dev/null 2>&1
expect_status "tiny store" 0 "$VBFSCTL" sample --store "$T/tiny" --index "$T/tiny-idx" -n 2 --seed 1 --json
expect_eq "tiny: per_file model, no byte rate" "per_file null 0" \
	"$(jq -r '.projection | "\(.model) \(.bytes_per_second) \(.calibration_bytes)"' "$T/last.out")"
expect_eq "tiny: projected = 5 x per-file cost" "True" "$($PY -c '
import json, sys
d = json.load(open(sys.argv[1])); m = d["projection"]
print(abs(5 * m["per_file_seconds"] - d["projected_seconds"]) <= 1e-9)' "$T/last.out")"
finish
