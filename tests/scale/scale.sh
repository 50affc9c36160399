#!/usr/bin/env bash
# tests/scale/scale.sh - vbfs at scale, simulated on this machine.
#
# Not a timed test (ctest does not run it); `scripts/bench --scale` runs it.
#
# Part "tree": a 100,000-file tree of small files.  Times vbfsctl build
#   (full, no-op incremental, and incremental after 1% of the files changed),
#   the index size, mount start-up, `find` and `ls -lR` through vbfs, bindfs
#   and on the raw store (first pass after mount and second pass), and the
#   lookup+getattr latency of lstat() on random files.
# Part "sparse": stores of sparse files (holes read as zeros, so a 1 TiB
#   store costs no disk) of growing total size.  Each is indexed for real
#   (every block hashed: nothing is synthesised), then the index size per TiB,
#   the build rate, mount start-up (which includes the root-digest check),
#   the daemon's memory after mounting, and a no-op incremental build are
#   measured; the figures are fitted linearly and extrapolated to 10 and
#   100 TiB.
#
# Usage: tests/scale/scale.sh [--work DIR] [--build DIR] [--files N]
#                             [--sizes GiB,GiB,...] [--parts tree,sparse]
# Writes BUILD/scale.csv and prints a table.
set -u -o pipefail
export LC_ALL=C

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=/var/tmp/vbfs-bench/scale
BUILD=$SRC/build-bench
FILES=100000
SIZES=64,256
PARTS=tree,sparse
while [ $# -gt 0 ]; do
	case $1 in
	--work) WORK=${2:?}; shift ;;
	--build) BUILD=${2:?}; shift ;;
	--files) FILES=${2:?}; shift ;;
	--sizes) SIZES=${2:?}; shift ;;
	--parts) PARTS=${2:?}; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "scale: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
VBFS=$BUILD/fs/vbfs
VBFSCTL=$BUILD/tools/vbfsctl
[ -x "$VBFS" ] && [ -x "$VBFSCTL" ] || { echo "scale: no vbfs binaries in $BUILD (run scripts/bench --scale)" >&2; exit 2; }
for c in bindfs jq perl; do
	command -v "$c" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$c" >/dev/null 2>&1
done
has() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }

SHM=/dev/shm/vbfs-scale.$$
. "$SRC/scripts/bench.d/lib.sh"
mkdir -p "$WORK" "$SHM" "$BUILD"
M=$WORK/mnt
CSV=$BUILD/scale.csv
echo "part,measure,size_gib,value,unit,how" >"$CSV"
out() {   # out PART MEASURE SIZE VALUE UNIT HOW
	echo "$1,$2,$3,$4,$5,\"$6\"" >>"$CSV"
	printf '%-7s %-34s %8s %12s %-6s %s\n' "$1" "$2" "$3" "$4" "$5" "$6"
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ms() { awk -v t="$1" 'BEGIN { printf "%.1f", t * 1000 }'; }

# mount_startup STORE INDEX: seconds from exec to a mounted, answering root.
# Polls tightly (the default helper polls every 50 ms).
mount_startup() {
	local s=$EPOCHREALTIME i
	mkdir -p "$M/vbfs"
	"$VBFS" -f -o "index=$2" "$1" "$M/vbfs" >"$M/vbfs.log" 2>&1 &
	MPID=$!; LIVE[$MPID]=$M/vbfs; MOUNTS+=("$M/vbfs")
	for i in $(seq 1 20000); do
		if mountpoint -q "$M/vbfs" && stat "$M/vbfs/" >/dev/null 2>&1; then
			awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.6f\n", e - s }'
			return 0
		fi
		kill -0 "$MPID" 2>/dev/null || { note "vbfs exited: $(tail -n2 "$M/vbfs.log")"; return 1; }
		sleep 0.001
	done
	return 1
}
mount_startup_median() {   # STORE INDEX -> median of 5, leaves nothing mounted
	local r t
	for r in 1 2 3 4 5; do
		t=$(mount_startup "$1" "$2") || return 1
		echo "$t"
		stop_mount "$M/vbfs"
	done | median
}
rss_kib() { awk -v k="${2:-VmRSS}:" '$1 == k { print $2 }' "/proc/$1/status"; }
idx_kib() { du -sk "$1" | awk '{ print $1 }'; }

# lstat_latency DIR LIST: mean and p99 microseconds of lstat() over the paths
# in LIST (relative to DIR), in the order given.
lstat_latency() {
	perl -MTime::HiRes=time -e '
		my ($dir, $list) = @ARGV; open(my $f, "<", $list) or die;
		my @t; while (my $p = <$f>) { chomp $p; my $s = time; lstat("$dir/$p") or die "$dir/$p: $!";
			push @t, (time - $s) * 1e6 }
		@t = sort { $a <=> $b } @t; my $sum = 0; $sum += $_ for @t;
		printf "%.1f %.1f\n", $sum / @t, $t[int(@t * 0.99)];' "$1" "$2"
}

# ---- part: tree ------------------------------------------------------------
tree_part() {
	local TREE=$WORK/tree IDX=$WORK/tree.idx n=$FILES t j
	if [ ! -e "$WORK/.tree.done" ] || [ "$(cat "$WORK/.tree.done")" != "$n" ]; then
		note "creating a $n-file tree"
		rm -rf "$TREE"; mkdir -p "$TREE"
		# 10 x 10 directories, ~1000 small files each (64 B - 4 KiB).
		awk -v n="$n" -v root="$TREE" 'BEGIN {
			base = "vbfs scale tree line of text 0123456789abcdef\n"
			while (length(base) < 4096) base = base base
			for (i = 0; i < n; i++) {
				d = sprintf("%s/a%d/b%d", root, int(i / 10000) % 10, int(i / 1000) % 10)
				if (!(d in made)) { system("mkdir -p " d); made[d] = 1 }
				f = sprintf("%s/f%06d.txt", d, i)
				printf "%d:%s", i, substr(base, 1, 64 + (i * 7919) % 4032) > f
				close(f)
			}
		}'
		echo "$n" >"$WORK/.tree.done"
	fi
	local nfiles nentries
	nfiles=$(find "$TREE" -type f | wc -l)
	nentries=$(find "$TREE" | wc -l)
	(cd "$TREE" && find . -type f | sed 's|^\./||' | shuf --random-source=<(yes) | head -n 20000) >"$WORK/tree.sample"

	# Warm: the figures are for a store in the page cache, as in the bench.
	find "$TREE" -type f -exec cat {} + >/dev/null
	rm -rf "$IDX"
	timeit "$VBFSCTL" build "$TREE" "$IDX" --full >/dev/null || { note "build failed"; return 1; }
	out tree "build --full" - "$T" s "$nfiles files, $(awk -v n="$nfiles" -v t="$T" 'BEGIN { printf "%.0f", n / t }') files/s"
	out tree "index size" - "$(idx_kib "$IDX")" KiB "$nentries entries"
	timeit "$VBFSCTL" build "$TREE" "$IDX" >/dev/null
	out tree "build, nothing changed" - "$T" s "incremental"
	# 1% of the files changed: one byte appended (new size and mtime).
	(cd "$TREE" && sed -n "1,$((nfiles / 100))p" <(find . -type f | awk 'NR % 100 == 1')) >"$WORK/tree.changed"
	(cd "$TREE" && while read -r f; do echo x >>"$f"; done <"$WORK/tree.changed")
	timeit "$VBFSCTL" build "$TREE" "$IDX" --json >"$WORK/tree.build.json"
	out tree "build, 1% of files changed" - "$T" s "incremental, $(jq .files_hashed "$WORK/tree.build.json") files rehashed"

	t=$(mount_startup_median "$TREE" "$IDX") && out tree "mount start-up" - "$(ms "$t")" ms "median of 5, to a stat()able root"

	local how dir
	for how in raw bindfs vbfs; do
		case $how in
		raw) dir=$TREE ;;
		bindfs) start_mount "$M/bindfs" "$M/bindfs" bindfs -f "$TREE" "$M/bindfs" || continue; dir=$M/bindfs ;;
		vbfs) start_mount "$M/vbfs" "$M/vbfs" "$VBFS" -f -o "index=$IDX" "$TREE" "$M/vbfs" || continue; dir=$M/vbfs ;;
		esac
		timeit find "$dir" >/dev/null; out tree "find, $how, first" - "$T" s "fresh mount"
		timeit find "$dir" >/dev/null; out tree "find, $how, second" - "$T" s "same mount"
		[ "$how" = vbfs ] && out tree "daemon RssAnon after find" - "$(rss_kib "$MPID" RssAnon)" KiB "private memory"
		[ "$how" != raw ] && stop_mount "$M/$how"
		case $how in
		bindfs) start_mount "$M/bindfs" "$M/bindfs" bindfs -f "$TREE" "$M/bindfs" || continue ;;
		vbfs) start_mount "$M/vbfs" "$M/vbfs" "$VBFS" -f -o "index=$IDX" "$TREE" "$M/vbfs" || continue ;;
		esac
		timeit ls -lR "$dir" >/dev/null; out tree "ls -lR, $how, first" - "$T" s "fresh mount"
		timeit ls -lR "$dir" >/dev/null; out tree "ls -lR, $how, second" - "$T" s "same mount"
		[ "$how" != raw ] && stop_mount "$M/$how"
		case $how in
		bindfs) start_mount "$M/bindfs" "$M/bindfs" bindfs -f "$TREE" "$M/bindfs" || continue ;;
		vbfs) start_mount "$M/vbfs" "$M/vbfs" "$VBFS" -f -o "index=$IDX" "$TREE" "$M/vbfs" || continue ;;
		esac
		read -r j t < <(lstat_latency "$dir" "$WORK/tree.sample")
		out tree "lstat, $how, first: mean" - "$j" us "20000 random files, fresh mount (lookup+getattr)"
		out tree "lstat, $how, first: p99" - "$t" us ""
		read -r j t < <(lstat_latency "$dir" "$WORK/tree.sample")
		out tree "lstat, $how, second: mean" - "$j" us "same files again"
		out tree "lstat, $how, second: p99" - "$t" us ""
		[ "$how" != raw ] && stop_mount "$M/$how"
	done
}

# ---- part: sparse ------------------------------------------------------------
# Each store: files of 8 GiB (or the whole size when smaller), so that even
# the smallest store is several files.
sparse_part() {
	local g S IDX per n i t rss kib
	for g in ${SIZES//,/ }; do
		S=$WORK/sparse-$g; IDX=$WORK/sparse-$g.idx
		per=$(( g < 8 ? g : 8 )); n=$(( g / per ))
		rm -rf "$S"; mkdir -p "$S"
		for i in $(seq 1 "$n"); do truncate -s "${per}G" "$S/part$i.img"; done
		note "indexing a $g GiB sparse store ($n files)"
		rm -rf "$IDX"
		timeit "$VBFSCTL" build "$S" "$IDX" --full >/dev/null || { note "build failed at $g GiB"; return 1; }
		out sparse "build --full" "$g" "$T" s "$(awk -v g="$g" -v t="$T" 'BEGIN { printf "%.0f", g * 1073.741824 / t }') MB/s"
		kib=$(idx_kib "$IDX")
		out sparse "index size" "$g" "$kib" KiB "$(awk -v k="$kib" -v g="$g" 'BEGIN { printf "%.1f MiB per TiB", k / 1024 / g * 1024 }')"
		timeit "$VBFSCTL" build "$S" "$IDX" >/dev/null
		out sparse "build, nothing changed" "$g" "$T" s "incremental"
		t=$(mount_startup_median "$S" "$IDX") && out sparse "mount start-up" "$g" "$(ms "$t")" ms "median of 5, includes the root-digest check"
		if start_mount "$M/vbfs" "$M/vbfs" "$VBFS" -f -o "index=$IDX" "$S" "$M/vbfs"; then
			timeit ls -l "$M/vbfs" >/dev/null
			out sparse "daemon VmRSS after mount" "$g" "$(rss_kib "$MPID")" KiB "all resident pages"
			# The index is mmap'd: its pages count in RSS but are page
			# cache, shared and reclaimable.  RssAnon is the daemon's own.
			out sparse "daemon RssAnon after mount" "$g" "$(rss_kib "$MPID" RssAnon)" KiB "private memory"
			out sparse "daemon RssFile after mount" "$g" "$(rss_kib "$MPID" RssFile)" KiB "mapped index and libraries"
			stop_mount "$M/vbfs"
		fi
		rm -rf "$S"
	done
}

echo "vbfs scale: $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-34s %8s %12s %-6s %s\n' part measure GiB value unit how
has "$PARTS" tree && tree_part
has "$PARTS" sparse && sparse_part

# ---- extrapolation: least squares over the sparse sizes -----------------
if has "$PARTS" sparse; then
	echo
	echo "linear fit over the sparse stores, extrapolated:"
	for m in "index size" "build --full" "build, nothing changed" "mount start-up" "daemon RssAnon after mount" "daemon RssFile after mount"; do
		awk -F, -v m="$m" '$1 == "sparse" && $2 == m { n++; x = $3; y = $4; sx += x; sy += y; sxx += x * x; sxy += x * y; u = $5 }
		END {
			if (n < 2) exit
			b = (n * sxy - sx * sy) / (n * sxx - sx * sx); a = (sy - b * sx) / n
			printf "  %-26s %s: %.4g + %.4g per GiB -> 10 TiB: %.4g %s, 100 TiB: %.4g %s\n", m, u, a, b, a + b * 10240, u, a + b * 102400, u
			printf "sparse-fit,%s,10240,%.6g,%s,\"linear fit\"\nsparse-fit,%s,102400,%.6g,%s,\"linear fit\"\n", m, a + b * 10240, u, m, a + b * 102400, u >> "/dev/stderr"
		}' "$CSV" 2>>"$CSV"
	done
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CSV: $CSV"
