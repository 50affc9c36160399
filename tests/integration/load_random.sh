#!/bin/bash
# load_random.sh - 32 concurrent readers at random offsets and lengths for
# ~20 s (VBFS_LOAD_SECONDS) with damaged blocks present.  Zero wrong bytes,
# EIO exactly where a range meets damage (tests/integration/randread.c), no
# crash, no deadlock (everything under timeout), the daemon's RSS sampled
# from /proc/PID/status and printed, the mount log names only damaged blocks.
#
# VBFS_LOAD_BIN=path runs another vbfs binary (scripts/tsan-check uses the
# ThreadSanitizer build); VBFS_LOAD_THREADS, VBFS_LOAD_SECONDS override.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
FG="python3 $HERE/faultgen.py"
VBFS_BIN=${VBFS_LOAD_BIN:-$VBFS_BIN}
THREADS=${VBFS_LOAD_THREADS:-32}
SECS=${VBFS_LOAD_SECONDS:-20}
SEED=${VBFS_FAULT_SEED:-$(( $(od -An -N4 -tu4 /dev/urandom) % 1000000 ))}
echo "# load_random seed $SEED, $THREADS readers, $SECS s, vbfs $VBFS_BIN"

cc -O2 -Wall -Wextra -Werror -pthread -o "$T/randread" "$HERE/randread.c" || { fail "compile randread"; finish; exit; }
S=$T/store
$FG make "$S" "$SEED" load64k >/dev/null
cp -a "$S" "$T/pristine"
expect_status "build" 0 "$VBFSCTL" build "$S" "$T/idx" --block-size 64K
$FG inject "$S" "$T/pristine" "$SEED" 40 65536 --inplace >"$T/faults.json"
$FG expect "$S" "$T/pristine" 65536 >"$T/expect.json"
$FG damage "$T/expect.json" >"$T/damage.tsv"
$FG list "$T/pristine" >"$T/list.txt"
echo "# $(wc -l <"$T/list.txt") files, $(du -sm "$T/pristine" | cut -f1) MiB, $(wc -l <"$T/damage.tsv") damaged blocks"

vbfs_mount "$S" "$T/idx" "$T/m" || { fail "mount"; finish; exit; }
PID=$VBFS_PID
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
RSS0=$(rss "$PID")
timeout $((SECS + 60)) "$T/randread" "$T/m" "$T/pristine" "$T/list.txt" "$T/damage.tsv" 65536 \
	"$THREADS" "$SECS" "$SEED" >"$T/rr.json" 2>"$T/rr.err" &
RR=$!
MAXRSS=$RSS0; SAMPLES=()
while kill -0 "$RR" 2>/dev/null; do
	r=$(rss "$PID"); [ -n "$r" ] || break
	SAMPLES+=("$r"); [ "$r" -gt "$MAXRSS" ] && MAXRSS=$r
	sleep 1
done
wait "$RR"; RC=$?
expect_eq "randread exit (124 = deadlock/timeout)" 0 "$RC"
[ "$RC" = 0 ] || head -20 "$T/rr.err" >&2
check "daemon alive after the load" kill -0 "$PID"
cmp -s "$T/pristine/big/L00.img" "$T/m/big/L00.img" 2>/dev/null || true
check "mount still answers" timeout 10 stat "$T/m/big" >/dev/null
RSS1=$(rss "$PID")
echo "# randread: $(cat "$T/rr.json")"
echo "# RSS of vbfs (KiB): start $RSS0, max $MAXRSS, end $RSS1; samples: ${SAMPLES[*]}"
# Bounded: the cache is 64 MiB by default; allow it plus 64 MiB of threads.
# (VBFS_LOAD_RSS_MAX_MB: sanitizer builds carry shadow memory.)
RSSMAX=${VBFS_LOAD_RSS_MAX_MB:-192}
check "RSS stays bounded (< $RSSMAX MiB)" [ "$MAXRSS" -lt $((RSSMAX * 1024)) ]
vbfs_umount "$T/m"
expect_eq "vbfs exit after damage" 1 "$VBFS_STATUS"
# Every logged event names a damaged block; each (path, block, kind) once.
python3 - "$T/expect.json" "$T/m.log" <<'EOF' && pass "mount log: only damaged blocks, each once" || fail "mount log has false alarms or duplicates"
import json, sys
exp = json.load(open(sys.argv[1]))["events"]
want = {(bytes.fromhex(v["path"]), v["block"], v["kind"]) for v in exp.values()}
seen = set(); bad = 0
for line in open(sys.argv[2]):
    ev = json.loads(line)
    k = (ev["path"].encode(), ev.get("block", -1), ev["event"])
    if k not in want or k in seen:
        print("bad event:", line.strip(), file=sys.stderr); bad += 1
    seen.add(k)
print("# mount log: %d events for %d damaged blocks" % (len(seen), len(want)))
sys.exit(1 if bad else 0)
EOF
if [ -n "${VBFS_REPORT_DIR:-}" ]; then
	mkdir -p "$VBFS_REPORT_DIR"
	python3 - "$T/rr.json" "$RSS0" "$MAXRSS" "$RSS1" "$(wc -l <"$T/damage.tsv")" >"$VBFS_REPORT_DIR/load_random.md" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("| readers (O_DIRECT) | seconds | reads | MiB read | MB/s | damaged blocks | EIO where expected | unexpected EIO | wrong bytes | RSS KiB start / max / end |")
print("|---|---|---|---|---|---|---|---|---|---|")
print("| %d (%d) | %.0f | %d | %d | %.0f | %s | %d | %d | %d | %s / %s / %s |" % (
    r["threads"], r["direct_threads"], r["seconds"], r["reads"], r["bytes"] >> 20, r["mb_per_s"],
    sys.argv[5], r["eio_expected"], r["eio_unexpected"], r["wrong_bytes"], sys.argv[2], sys.argv[3], sys.argv[4]))
EOF
fi
finish
