#!/usr/bin/env bash
# scripts/bench.d/shard.sh - scale-out scrubs measured (`scripts/bench --shard`).
#
# Part "store": a store of 10,000 files and 1 GiB with damage in 24+
#   places.  For N = 1..16, N local shard processes (`verify --shard K/N
#   --jobs 1`, all at once) and `merge`: wall time, blocks checked exactly
#   once (a block trace), the worst shard's distance from total/N, and the
#   merged events against one unsharded scrub's.  Then two shards against
#   one unsharded scrub on this machine's 2 cores (median of --runs), and a
#   pass resumed after kill -9 at 10 random points.
# Part "plan": an index of 100,000,000 blocks (100,000 sparse files of
#   1000 MiB: 104.9 TB, indexed for real by `vbfsctl build`, whose holes
#   cost no reading) plans one shard of 1000 (`verify --shard 7/1000
#   --max-duration 0`: open, root digest check, plan, stop), and 1000
#   shard reports (one real report, copied to the 1000 shard numbers with
#   20 events spread over them) are merged: seconds and peak memory.
#
# Usage: scripts/bench.d/shard.sh [--work DIR] [--build DIR] [--runs N] [--parts store,pair,plan]
# Writes BUILD/shard.csv and prints a table.
set -u -o pipefail
export LC_ALL=C

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=/var/tmp/vbfs-bench/shard
BUILD=$SRC/build-bench
RUNS=5
PARTS=store,pair,plan
while [ $# -gt 0 ]; do
	case $1 in
	--work) WORK=${2:?}; shift ;;
	--build) BUILD=${2:?}; shift ;;
	--runs) RUNS=${2:?}; shift ;;
	--parts) PARTS=${2:?}; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "shard bench: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
VBFSCTL=$BUILD/tools/vbfsctl
[ -x "$VBFSCTL" ] || { echo "shard bench: no vbfsctl in $BUILD (run scripts/bench --shard)" >&2; exit 2; }
for c in jq python3; do command -v "$c" >/dev/null || { echo "shard bench: needs $c" >&2; exit 2; }; done
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null 2>&1
has() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }
mkdir -p "$WORK" "$BUILD"
CSV=$BUILD/shard.csv
echo "part,measure,n,value,unit" >"$CSV"
out() {   # out PART MEASURE N VALUE UNIT
	echo "$1,$2,$3,$4,$5" >>"$CSV"
	printf '%-6s %-44s %5s %14s %s\n' "$1" "$2" "$3" "$4" "$5"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# peak_anon OUT CMD...: run CMD, writing to OUT the peak of its anonymous
# memory (RssAnon, KiB, sampled every 20 ms): RSS also counts the mapped
# index, which is page cache, not memory the plan allocated.
peak_anon() {
	local out=$1; shift
	"$@" & local pid=$! peak=0 v
	while kill -0 "$pid" 2>/dev/null; do
		v=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
		sleep 0.02
	done
	wait "$pid"; local rc=$?
	echo "$peak" >"$out"
	return $rc
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- parts "store" and "pair" -----------------------------------------------------
if has "$PARTS" store || has "$PARTS" pair; then
	S=$WORK/store I=$WORK/index
	if [ ! -f "$WORK/store.done" ]; then
		rm -rf "$S" "$I"
		python3 - "$S" <<'PY'
import os, random, sys
root = sys.argv[1]; rnd = random.Random(10000)
# 9,900 small files (1 to 64 KiB, log-uniform) and 100 large ones sharing
# the rest of 1 GiB (about 8.7 MiB each, so 9 blocks of 1 MiB).
small = [int(2 ** rnd.uniform(10, 16)) for _ in range(9900)]
large = ((1 << 30) - sum(small)) // 100
for i in range(10000):
    d = os.path.join(root, "d%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rnd.randbytes(small[i] if i < 9900 else large))
PY
		"$VBFSCTL" build "$S" "$I" >/dev/null 2>&1 || { echo "shard bench: build failed" >&2; exit 2; }
		# Damage in 28 places: 16 flipped bytes in large files and 4 in small
		# ones, 4 large files cut short (8 missing blocks each), 4 deleted.
		python3 - "$S" <<'PY'
import os, sys
root = sys.argv[1]
files = sorted((os.path.getsize(os.path.join(dp, f)), os.path.join(dp, f))
               for dp, _, fs in os.walk(root) for f in fs)
big = [p for s, p in files if s > 3 << 20]
small = [p for s, p in files if s < 1 << 16]
def flip(p, off):
    with open(p, "r+b") as f:
        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 1]))
for i, p in enumerate(big[:16]):
    flip(p, (1 + i % 8) << 20 | 77)
for p in small[::2000][:4]:
    flip(p, 100)
for p in big[16:20]:
    os.truncate(p, (1 << 20) + 12345)
for p in big[20:24]:
    os.unlink(p)
PY
		touch "$WORK/store.done"
	fi
	cat $(find "$S" -type f) >/dev/null 2>&1      # warm the page cache
	"$VBFSCTL" verify "$S" "$I" --json >"$WORK/all.json" 2>/dev/null
	jq -c '.events[] | del(.time)' "$WORK/all.json" | sort >"$WORK/all.events"
	rm -f "$WORK/all.trace"
	VBFS_SCRUB_TRACE=$WORK/all.trace "$VBFSCTL" verify "$S" "$I" >/dev/null 2>&1
	BLOCKS=$(jq .blocks "$WORK/all.json")
	out store "files" - "$(find "$S" -type f | wc -l)" files
	out store "bytes" - "$(jq .bytes "$WORK/all.json")" B
	out store "damage events (unsharded)" - "$(wc -l <"$WORK/all.events")" events
	out store "blocks (unsharded)" - "$BLOCKS" blocks
fi
if has "$PARTS" store; then
	for n in $(seq 1 16); do
		d=$WORK/n$n
		rm -rf "$d"; mkdir -p "$d"
		t=$(now)
		pids=()
		for k in $(seq 0 $((n - 1))); do
			VBFS_SCRUB_TRACE=$d/trace "$VBFSCTL" verify "$S" "$I" --shard "$k/$n" --jobs 1 \
				--report "$d/shard-$k.json" >/dev/null 2>&1 &
			pids+=($!)
		done
		for p in "${pids[@]}"; do wait "$p"; done
		"$VBFSCTL" merge "$d"/shard-*.json --report "$d/merged.json" >/dev/null 2>&1
		secs=$(since "$t")
		once=$( [ "$(sort "$d/trace" | md5sum)" = "$(sort "$WORK/all.trace" | md5sum)" ] && echo yes || echo NO)
		same=$(cmp -s "$WORK/all.events" <(jq -c '.events[] | del(.time)' "$d/merged.json" | sort) && echo yes || echo NO)
		worst=$(jq -s --argjson n "$n" '(map(.shard.bytes) | add) as $t | ($t / $n) as $f
			| (map(.shard.bytes - $f | fabs) | max) / $f * 100 | . * 100 | round / 100' "$d"/shard-*.json)
		out store "N shards + merge: seconds" "$n" "$secs" s
		out store "N shards: every block exactly once" "$n" "$once" -
		out store "N shards: merged events = unsharded" "$n" "$same" -
		out store "N shards: worst shard off total/N" "$n" "$worst" "%"
	done
fi
if has "$PARTS" pair; then
	# Two shards on 2 cores against one unsharded scrub: rate ratio, by the
	# wall clock and by CPU seconds (user + system: what a busy machine
	# cannot blur).
	rm -f "$WORK"/one.* "$WORK"/two.* "$WORK"/slow.*
	for r in $(seq 1 "$RUNS"); do
		t=$(now)
		/usr/bin/time -f "%U %S" -o "$WORK/one.cpu.$r" "$VBFSCTL" verify "$S" "$I" --jobs 2 >/dev/null 2>&1
		echo "$(since "$t")" >>"$WORK/one.t"
		t=$(now)
		/usr/bin/time -f "%U %S" -o "$WORK/two.cpu.$r.a" "$VBFSCTL" verify "$S" "$I" --shard 0/2 --jobs 1 >/dev/null 2>&1 &
		a=$!
		/usr/bin/time -f "%U %S" -o "$WORK/two.cpu.$r.b" "$VBFSCTL" verify "$S" "$I" --shard 1/2 --jobs 1 >/dev/null 2>&1
		wait "$a"
		echo "$(since "$t")" >>"$WORK/two.t"
		tail -qn1 "$WORK/one.cpu.$r" | awk '{ print $1 + $2 }' >>"$WORK/one.c"
		tail -qn1 "$WORK/two.cpu.$r.a" "$WORK/two.cpu.$r.b" | awk '{ s += $1 + $2 } END { print s }' >>"$WORK/two.c"
		tail -qn1 "$WORK/two.cpu.$r.a" "$WORK/two.cpu.$r.b" | awk '{ c = $1 + $2; if (c > m) m = c } END { print m }' >>"$WORK/slow.c"
	done
	one=$(median <"$WORK/one.t"); two=$(median <"$WORK/two.t")
	onec=$(median <"$WORK/one.c"); twoc=$(median <"$WORK/two.c"); slowc=$(median <"$WORK/slow.c")
	out store "load average while measuring" - "$(cut -d' ' -f1 /proc/loadavg)" -
	out store "one unsharded scrub (--jobs 2): wall, median" - "$one" s
	out store "two shards at once (--jobs 1 each): wall, median" - "$two" s
	out store "two shards' rate / one scrub's rate (wall)" - "$(awk -v a="$one" -v b="$two" 'BEGIN { printf "%.3f", a / b }')" x
	out store "one unsharded scrub: CPU seconds, median" - "$onec" s
	out store "two shards: CPU seconds together, median" - "$twoc" s
	out store "two shards' rate / one scrub's rate (CPU)" - "$(awk -v a="$onec" -v b="$twoc" 'BEGIN { printf "%.3f", a / b }')" x
	# With a core each on an idle machine the pair takes as long as its
	# slower shard, the single scrub half its CPU seconds.
	out store "the slower shard: CPU seconds, median" - "$slowc" s
	out store "two shards' rate / one scrub's rate (idle 2 cores)" - "$(awk -v a="$onec" -v b="$slowc" 'BEGIN { printf "%.3f", a / 2 / b }')" x
	rm -f "$WORK"/one.* "$WORK"/two.* "$WORK"/slow.*
fi
if has "$PARTS" store; then
	# kill -9 at 10 random points of one pass.
	rm -f "$WORK/state" "$WORK/resume.trace"
	t=$(now); VBFS_SCRUB_TRACE=/dev/null "$VBFSCTL" verify "$S" "$I" --resume "$WORK/probe" >/dev/null 2>&1
	ms=$(awk -v s="$(since "$t")" 'BEGIN { printf "%d", s * 1000 }'); rm -f "$WORK/probe"
	kills=0
	for i in $(seq 1 10); do
		VBFS_SCRUB_TRACE=$WORK/resume.trace "$VBFSCTL" verify "$S" "$I" --resume "$WORK/state" >/dev/null 2>&1 &
		p=$!
		sleep "$(awk -v ms="$ms" -v r="$RANDOM" 'BEGIN { printf "%.3f", (20 + ms / 15 * r / 32768) / 1000 }')"
		kill -KILL "$p" 2>/dev/null && kills=$((kills + 1))
		wait "$p" 2>/dev/null
	done
	VBFS_SCRUB_TRACE=$WORK/resume.trace "$VBFSCTL" verify "$S" "$I" --resume "$WORK/state" --report "$WORK/resumed.json" >/dev/null 2>&1
	out store "resume: runs killed with SIGKILL" - "$kills" runs
	out store "resume: every block covered" - "$( [ "$(sort -u "$WORK/resume.trace" | md5sum)" = "$(sort -u "$WORK/all.trace" | md5sum)" ] && echo yes || echo NO)" -
	out store "resume: blocks checked twice" - "$(( $(wc -l <"$WORK/resume.trace") - BLOCKS ))" blocks
	out store "resume: pass events = unsharded" - "$(cmp -s "$WORK/all.events" <(jq -c '.events[] | del(.time)' "$WORK/resumed.json" | sort) && echo yes || echo NO)" -
fi

# ---- part "plan" ----------------------------------------------------------------
if has "$PARTS" plan; then
	P=$WORK/sparse PI=$WORK/sparse.idx
	if [ ! -f "$WORK/sparse.done" ]; then
		rm -rf "$P" "$PI"
		for d in $(seq -w 0 99); do
			mkdir -p "$P/d$d"
			(cd "$P/d$d" && for f in $(seq -w 0 999); do echo "f$f"; done | xargs truncate -s 1000M)
		done
		t=$(now)
		/usr/bin/time -f "%e %M" -o "$WORK/build.time" "$VBFSCTL" build "$P" "$PI" >/dev/null 2>&1 ||
			{ echo "shard bench: sparse build failed" >&2; exit 2; }
		touch "$WORK/sparse.done"
	fi
	out plan "index build (holes recorded, not read)" - "$(tail -1 "$WORK/build.time" | cut -d' ' -f1)" s
	out plan "index size" - "$(du -sm "$PI" | cut -f1)" MiB
	# A budget of 0 plans and stops: exit 2 (nothing verified), the plan on --json.
	/usr/bin/time -f "%e %M" -o "$WORK/plan.time" "$VBFSCTL" verify "$P" "$PI" --shard 7/1000 \
		--max-duration 0 --json >"$WORK/plan.json" 2>/dev/null
	out plan "blocks in the index" - "$(jq '.shard.index_bytes / 1048576' "$WORK/plan.json")" blocks
	out plan "plan shard 7/1000: walk the index, plan" - "$(jq '.seconds * 1000 | round / 1000' "$WORK/plan.json")" s
	out plan "plan shard 7/1000: whole process (+ index open)" - "$(tail -1 "$WORK/plan.time" | cut -d' ' -f1)" s
	out plan "plan shard 7/1000: peak RSS (+ index open)" - "$(( $(tail -1 "$WORK/plan.time" | cut -d' ' -f2) / 1024 ))" MiB
	/usr/bin/time -f "%e %M" -o "$WORK/plan1.time" "$VBFSCTL" verify "$P" "$PI" \
		--max-duration 0 --json >"$WORK/plan1.json" 2>/dev/null
	out plan "plan all 100M blocks (N=1): walk, plan" - "$(jq '.seconds * 1000 | round / 1000' "$WORK/plan1.json")" s
	out plan "plan all 100M blocks (N=1): peak RSS (+ open)" - "$(( $(tail -1 "$WORK/plan1.time" | cut -d' ' -f2) / 1024 ))" MiB
	peak_anon "$WORK/plan.anon" "$VBFSCTL" verify "$P" "$PI" --shard 7/1000 --max-duration 0 >/dev/null 2>&1
	out plan "plan shard 7/1000: peak anonymous memory" - "$(( $(cat "$WORK/plan.anon") / 1024 ))" MiB
	peak_anon "$WORK/plan1.anon" "$VBFSCTL" verify "$P" "$PI" --max-duration 0 >/dev/null 2>&1
	out plan "plan all 100M blocks (N=1): peak anonymous memory" - "$(( $(cat "$WORK/plan1.anon") / 1024 ))" MiB
	out plan "shard 7/1000: blocks planned" - "$(jq .shard.blocks "$WORK/plan.json")" blocks
	# 1000 shard reports from the real one: each shard's number, 20 of them with an event.
	rm -rf "$WORK/reports"; mkdir -p "$WORK/reports"
	jq '.complete = true | .ok = true | del(.error, .exit_status)' "$WORK/plan.json" >"$WORK/one.json"
	python3 - "$WORK/one.json" "$WORK/reports" <<'PY'
import json, sys
base = json.load(open(sys.argv[1]))
for k in range(1000):
    r = dict(base); r["shard"] = dict(base["shard"], k=k, n=1000); r["events"] = []
    if k % 50 == 3:
        r["events"] = [{"time": "2026-12-02T00:00:00Z", "event": "corrupt", "path": "d%02d/f%03d" % (k // 10, k % 1000),
                        "block": 7, "offset": 7 << 20, "length": 1 << 20,
                        "expected": "00" * 32, "actual": "11" * 32}]
    json.dump(r, open("%s/shard-%04d.json" % (sys.argv[2], k), "w"), indent=1)
PY
	/usr/bin/time -f "%e %M" -o "$WORK/merge.time" "$VBFSCTL" merge "$WORK"/reports/shard-*.json \
		--report "$WORK/merged.json" --metrics "$WORK/merged.prom" >/dev/null 2>&1
	out plan "merge 1000 shard reports: exit status" - "$?" -
	out plan "merge 1000 shard reports" - "$(tail -1 "$WORK/merge.time" | cut -d' ' -f1)" s
	out plan "merge 1000 shard reports: peak RSS" - "$(( $(tail -1 "$WORK/merge.time" | cut -d' ' -f2) / 1024 ))" MiB
	out plan "merged events" - "$(jq '.events | length' "$WORK/merged.json")" events
fi
echo "shard bench: figures in $CSV"
