# scripts/bench.d/restore.sh - restores of whole trees, the sections of
# scripts/bench for issue 14 (sourced by scripts/bench after its helpers):
#
#   tree      64 x 16 MiB (a restic pack tree): tar | cat, cp -a, rsync -a;
#             plus one 1 GiB file (the packs end to end): cat, openssl dgst
#   small     100,000 files of 1-64 KiB (log-uniform, 200 directories; an
#             /etc or mail backup): tar | cat, cp -a
#   meta      the small tree's metadata only: find -ls, ls -lR, du -s
#   limit     raw SHA-256 on 1 and 2 cores (openssl speed) and the verified
#             FUSE read limit L = 1/(1/H2 + 1/B), B = bindfs's first read
#   cold      tree tar and the 1 GiB cat with the store's pages evicted
#             before each run (posix_fadvise DONTNEED on the data set's files:
#             the same as drop_caches for this data, without emptying the
#             page cache of everyone else on the machine)
#   throttle  the tree on ext4 on a loop device (direct I/O to its backing
#             file), reads limited to THROTTLE_MBPS (200) by the blkio
#             controller (cgroup v2 io.max, else v1 blkio.throttle), cold:
#             cat of every file straight and through vbfs
#   pg        pg_restore of a >= 1 GB custom-format dump (pgbench scale 100,
#             uncompressed) into a private cluster: straight from the store
#             and through vbfs
#
# Readers: store (no FUSE), bindfs (unverified FUSE), vbfs, and "base" when
# VBFS_BENCH_BASE names another vbfs binary (an older commit, for before and
# after in one interleaved run).  Each FUSE reader gets a fresh mount per
# measurement, so every vbfs figure is a first read.

R14=$WORK/restore
R14_TREE=$R14/tree R14_SMALL=$R14/small R14_ONE=$R14/one
if [ "$QUICK" = 1 ]; then
	R14_TREE_N=16 R14_SMALL_N=10000
else
	R14_TREE_N=64 R14_SMALL_N=100000
fi
R14_TREE=$R14_TREE-$R14_TREE_N R14_SMALL=$R14_SMALL-$R14_SMALL_N R14_ONE=$R14_ONE-$R14_TREE_N
BASE_VBFS=${VBFS_BENCH_BASE:-}
THROTTLE_MBPS=${THROTTLE_MBPS:-200}

r14_readers() {
	local r out=
	for r in store bindfs vbfs base; do
		case $r in
		store) want cat || continue ;;
		base) [ -n "$BASE_VBFS" ] && [ -x "$BASE_VBFS" ] || continue ;;
		*) want "$r" || continue ;;
		esac
		out="$out $r"
	done
	echo "$out"
}

# r14_data: make the trees once (kept for the next run) and index the ones
# the chosen sections read (pg has its own data set).
r14_data() {
	mkdir -p "$R14"
	section tree || section small || section meta || section limit || section cold || section throttle || return 0
	python3 "$SRC/scripts/bench.d/mkdata.py" tree "$R14_TREE" "$R14_TREE_N" 16 ||
		die "could not make the tree data set"
	python3 "$SRC/scripts/bench.d/mkdata.py" small "$R14_SMALL" "$R14_SMALL_N" 1 64 ||
		die "could not make the small-file data set"
	if [ ! -e "$R14_ONE.done" ]; then
		rm -rf "$R14_ONE"; mkdir -p "$R14_ONE"
		cat "$R14_TREE"/pack* >"$R14_ONE/one.bin" && touch "$R14_ONE.done"
	fi
	local d
	for d in "$R14_TREE" "$R14_SMALL" "$R14_ONE"; do
		[ "$d" = "$R14_SMALL" ] && ! section small && ! section meta && continue
		rm -rf "$d.idx"
		"$VBFSCTL" build "$d" "$d.idx" >/dev/null || die "vbfsctl build of $d failed"
	done
	R14_TREE_BYTES=$(tree_bytes "$R14_TREE")
	R14_SMALL_BYTES=$(tree_bytes "$R14_SMALL")
	R14_ONE_BYTES=$(tree_bytes "$R14_ONE")
	warm "$R14_TREE" "$R14_SMALL" "$R14_ONE"
}

# r14_mount READER STORE: mount READER over STORE at $M/r14; sets R14_DIR.
r14_mount() {
	local rd=$1 store=$2
	case $rd in
	store) R14_DIR=$store; return 0 ;;
	bindfs) R14_DIR=$M/r14; start_mount "$M/r14" "$M/r14" bindfs -f "$store" "$M/r14" ;;
	vbfs) R14_DIR=$M/r14; start_mount "$M/r14" "$M/r14" "$VBFS" -f \
		-o "index=$store.idx,log=$EVENTS${VB_OPTS:+,$VB_OPTS}" "$store" "$M/r14" ;;
	base) R14_DIR=$M/r14; start_mount "$M/r14" "$M/r14" "$BASE_VBFS" -f \
		-o "index=$store.idx,log=$EVENTS${VB_OPTS:+,$VB_OPTS}" "$store" "$M/r14" ;;
	esac
}
r14_umount() { [ "$1" = store ] || stop_mount "$M/r14"; }

rsync_read() { rm -rf "$SHM/rs"; rsync -a "$1/" "$SHM/rs/"; local rc=$?; rm -rf "$SHM/rs"; return $rc; }
cat_tree() { find "$1" -type f -exec cat {} + >/dev/null; }
find_ls() { find "$1" -ls >/dev/null; }
ls_lR() { ls -lR "$1" >/dev/null; }
du_s() { du -s "$1" >/dev/null; }

# measure_s KEY DATASET READER HOW CMD...: time CMD, record seconds.
measure_s() {
	local key=$1 ds=$2 rd=$3 how=$4; shift 4
	def "$key" "$ds" "$rd" time s "$how"
	if timeit "$@"; then put "$key" "$T"; else note "$key: '$*' failed (run skipped)"; fi
}

# r14_cpu KEY PID: the daemon's CPU seconds so far (user + system).
r14_cpu() {
	local tck u st
	tck=$(getconf CLK_TCK)
	read -r u st < <(awk '{ print $14, $15 }' "/proc/$2/stat" 2>/dev/null) || return 0
	def "$1" "${1%%.*}" "${1#*.}" "daemon CPU" s "daemon user+system CPU for the read"
	put "$1" "$(awk -v u="$u" -v s="$st" -v h="$tck" 'BEGIN { printf "%.2f", (u + s) / h }')"
}

# anon_of KEY PID: the daemon's private memory (RssAnon, KiB).  VmRSS also
# counts the index pages it has mapped (page cache, shared, reclaimable):
# 36 MiB for the 100,000-file index, which is not the daemon growing.
anon_of() {
	local v
	v=$(awk '/^RssAnon:/ { print $2 }' "/proc/$2/status" 2>/dev/null) || return 0
	def "$1" "${1#mem.}" vbfs RssAnon KiB "daemon private memory after the read"
	put "$1" "$v"
}

# evict DIR...: drop the page-cache pages of every file under DIR.
evict() {
	find "$@" -type f -print0 | python3 -c '
import os, sys
for p in sys.stdin.buffer.read().split(b"\0"):
    if p:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)'
}

r14_tree_run() {
	local rd how
	for rd in $(r14_readers); do
		for how in tar cp rsync; do
			r14_mount "$rd" "$R14_TREE" || continue
			measure "tree.$rd-$how" tree "$rd" "$how through a fresh mount" "$R14_TREE_BYTES" "${how}_read" "$R14_DIR"
			[ "$rd" = vbfs ] && [ "$how" = tar ] && { mem_of mem.tree "$MPID"; anon_of mem.tree.anon "$MPID"; r14_cpu tree.vbfs-tar-cpu "$MPID"; }
			[ "$rd" = bindfs ] && [ "$how" = tar ] && r14_cpu tree.bindfs-tar-cpu "$MPID"
			r14_umount "$rd"
		done
		r14_mount "$rd" "$R14_ONE" || continue
		measure "one.$rd-first" one "$rd" "first read of one $((R14_ONE_BYTES >> 20)) MiB file" "$R14_ONE_BYTES" read_file "$R14_DIR/one.bin"
		[ "$rd" = vbfs ] && r14_cpu one.vbfs-cpu "$MPID"
		r14_umount "$rd"
	done
	want openssl && measure one.openssl one openssl "openssl dgst -sha256 (one core)" "$R14_ONE_BYTES" \
		openssl dgst -sha256 -out /dev/null "$R14_ONE/one.bin"
}

r14_small_run() {
	local rd how
	for rd in $(r14_readers); do
		for how in tar cp; do
			r14_mount "$rd" "$R14_SMALL" || continue
			measure "small.$rd-$how" small "$rd" "$how through a fresh mount" "$R14_SMALL_BYTES" "${how}_read" "$R14_DIR"
			[ "$rd" = vbfs ] && [ "$how" = tar ] && { mem_of mem.small "$MPID"; anon_of mem.small.anon "$MPID"; }
			r14_umount "$rd"
		done
	done
}

r14_meta_run() {
	local rd how
	for rd in $(r14_readers); do
		for how in find_ls ls_lR du_s; do
			r14_mount "$rd" "$R14_SMALL" || continue
			measure_s "meta.$rd-$how" meta "$rd" "${how/_/ -} of $R14_SMALL_N files, fresh mount" "$how" "$R14_DIR"
			# again on the same mount: the kernel now holds the entries
			measure_s "meta2.$rd-$how" meta "$rd" "${how/_/ -} again, same mount" "$how" "$R14_DIR"
			r14_umount "$rd"
		done
	done
}

# openssl speed: MB/s of raw SHA-256 over 1 MiB buffers, N processes.
sha_speed() {
	local n=$1 i out=$SHM/speed
	for i in $(seq 1 "$n"); do
		openssl speed -seconds 3 -evp sha256 -bytes 1048576 2>/dev/null >"$out.$i" &
	done
	wait
	cat "$out".* | awk '/^sha256/ { v = $NF; sub(/k$/, "", v); s += v * 1000 / 1e6 } END { printf "%.1f", s }'
	rm -f "$out".*
}

r14_limit_run() {
	def limit.h1 limit openssl "raw SHA-256 1 process" MB/s "openssl speed -evp sha256 -bytes 1048576"
	def limit.h2 limit openssl "raw SHA-256 2 processes" MB/s "two openssl speed at once, summed"
	put limit.h1 "$(sha_speed 1)"
	put limit.h2 "$(sha_speed 2)"
}

r14_cold_run() {
	local rd
	for rd in $(r14_readers); do
		r14_mount "$rd" "$R14_TREE" || continue
		evict "$R14_TREE"
		measure "cold.$rd-tar" cold "$rd" "tar of the tree, store evicted from the page cache" "$R14_TREE_BYTES" tar_read "$R14_DIR"
		r14_umount "$rd"
		r14_mount "$rd" "$R14_ONE" || continue
		evict "$R14_ONE"
		measure "cold.$rd-one" cold "$rd" "first read of the 1 GiB file, store evicted" "$R14_ONE_BYTES" read_file "$R14_DIR/one.bin"
		[ "$rd" = vbfs ] && { mem_of mem.cold "$MPID"; r14_cpu cold.vbfs-one-cpu "$MPID"; }
		r14_umount "$rd"
	done
	warm "$R14_TREE" "$R14_ONE"
}

# ---- throttle: a loop device limited by the blkio controller ----------------
R14_LOOP= R14_CG= R14_CGV=
r14_throttle_cleanup() {
	mountpoint -q "$R14/loopfs" 2>/dev/null && umount "$R14/loopfs"
	[ -n "$R14_LOOP" ] && losetup -d "$R14_LOOP" 2>/dev/null
	[ -n "$R14_CG" ] && rmdir "$R14_CG" 2>/dev/null
	R14_LOOP= R14_CG=
}

# r14_throttle_setup: ext4 image with the tree (made once), attached with
# direct I/O, a cgroup with a read limit on it.  Sets R14_LOOP, R14_CG.
r14_throttle_setup() {
	local img=$R14/loop-$R14_TREE_N.img mnt=$R14/loopfs majmin
	need losetup mount || return 1
	if [ ! -e "$img.done" ]; then
		rm -f "$img"
		truncate -s $(( (R14_TREE_BYTES >> 20) * 12 / 10 + 256 ))M "$img"
		mkfs.ext4 -q -F "$img" || return 1
		mkdir -p "$mnt"
		mount -o loop "$img" "$mnt" || return 1
		cp -a "$R14_TREE" "$mnt/tree" && sync && umount "$mnt" && touch "$img.done" || return 1
	fi
	R14_LOOP=$(losetup --direct-io=on --show -f "$img") || return 1
	mkdir -p "$mnt"
	mount -o ro,noatime "$R14_LOOP" "$mnt" || return 1
	rm -rf "$mnt.idx"
	"$VBFSCTL" build "$mnt/tree" "$R14/loop.idx" >/dev/null 2>&1 || { rm -rf "$R14/loop.idx"; "$VBFSCTL" build "$mnt/tree" "$R14/loop.idx" >/dev/null || return 1; }
	majmin=$(lsblk -dno MAJ:MIN "$R14_LOOP" | tr -d ' ')
	if [ -w /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		R14_CG=/sys/fs/cgroup/vbfs-bench.$$; R14_CGV="cgroup v2 io.max rbps"
		echo +io >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
		mkdir "$R14_CG" && echo "$majmin rbps=$((THROTTLE_MBPS * 1000000))" >"$R14_CG/io.max" || return 1
	elif [ -d /sys/fs/cgroup/blkio ]; then
		R14_CG=/sys/fs/cgroup/blkio/vbfs-bench.$$; R14_CGV="cgroup v1 blkio.throttle.read_bps_device"
		mkdir "$R14_CG" && echo "$majmin $((THROTTLE_MBPS * 1000000))" >"$R14_CG/blkio.throttle.read_bps_device" || return 1
	else
		note "throttle: no blkio/io controller here"
		return 1
	fi
}

# in_cg CMD...: run CMD inside the throttled cgroup.
in_cg() { bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$R14_CG" "$@"; }

r14_throttle_run() {
	local mnt=$R14/loopfs r
	[ -n "$R14_LOOP" ] || r14_throttle_setup || { note "throttle: setup failed; skipped"; r14_throttle_cleanup; return 0; }
	note "throttle: $R14_LOOP limited to $THROTTLE_MBPS MB/s by $R14_CGV"
	evict "$mnt/tree"
	measure throttle.device-cat throttle device "cat of every file straight from the throttled device, cold" \
		"$R14_TREE_BYTES" in_cg bash -c "find '$mnt/tree' -type f -exec cat {} + >/dev/null"
	evict "$mnt/tree"
	# The daemon does the store's I/O: it runs in the cgroup.
	if start_mount "$M/r14" "$M/r14" in_cg "$VBFS" -f -o "index=$R14/loop.idx,log=$EVENTS" "$mnt/tree" "$M/r14"; then
		measure throttle.vbfs-cat throttle vbfs "cat of every file through vbfs, device throttled, cold" \
			"$R14_TREE_BYTES" cat_tree "$M/r14"
		stop_mount "$M/r14"
	fi
	evict "$mnt/tree"
	if start_mount "$M/r14" "$M/r14" in_cg "$VBFS" -f -o "index=$R14/loop.idx,log=$EVENTS" "$mnt/tree" "$M/r14"; then
		measure throttle.vbfs-tar throttle vbfs "tar of the tree through vbfs, device throttled, cold" \
			"$R14_TREE_BYTES" tar_read "$M/r14"
		stop_mount "$M/r14"
	fi
	evict "$mnt/tree"
	measure throttle.device-tar throttle device "tar of the tree straight from the throttled device, cold" \
		"$R14_TREE_BYTES" in_cg bash -c "cd '$mnt/tree' && tar -cf - . | cat >/dev/null"
}

# ---- pg: pg_restore straight and through vbfs ---------------------------------
PG_SCALE=${PG_SCALE:-100}
R14_PG=$R14/pg R14_PGBIN= R14_PGUSER=postgres
pg_as() { runuser -u "$R14_PGUSER" -- "$@"; }
r14_pg_stop() { [ -n "$R14_PGBIN" ] && [ -e "$R14_PG/data/postmaster.pid" ] && pg_as "$R14_PGBIN/pg_ctl" -D "$R14_PG/data" -m fast -w stop >/dev/null 2>&1; }

r14_pg_setup() {
	R14_PGBIN=$(pg_config --bindir 2>/dev/null)
	[ -x "$R14_PGBIN/initdb" ] || R14_PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
	[ -x "$R14_PGBIN/initdb" ] || { note "pg: no PostgreSQL server binaries"; return 1; }
	id "$R14_PGUSER" >/dev/null 2>&1 || { note "pg: no $R14_PGUSER user"; return 1; }
	mkdir -p "$R14_PG/store"
	chown "$R14_PGUSER" "$R14_PG"
	if [ ! -d "$R14_PG/data" ]; then
		pg_as "$R14_PGBIN/initdb" -D "$R14_PG/data" -U postgres -A trust --no-sync >/dev/null || return 1
		cat >>"$R14_PG/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$R14_PG'
fsync = off
full_page_writes = off
synchronous_commit = off
maintenance_work_mem = 256MB
max_wal_size = 4GB
EOF
	fi
	pg_as "$R14_PGBIN/pg_ctl" -D "$R14_PG/data" -l "$R14_PG/server.log" -w start >/dev/null || return 1
	if [ ! -e "$R14_PG/bench.dump.done" ]; then
		note "pg: making the dump (pgbench scale $PG_SCALE, pg_dump -Fc -Z0)"
		pg_as "$R14_PGBIN/createdb" -h "$R14_PG" -U postgres src 2>/dev/null
		pg_as "$R14_PGBIN/pgbench" -h "$R14_PG" -U postgres -i -q -s "$PG_SCALE" src >/dev/null 2>&1 || return 1
		pg_as "$R14_PGBIN/pg_dump" -h "$R14_PG" -U postgres -Fc -Z0 -f "$R14_PG/bench.dump" src || return 1
		mv "$R14_PG/bench.dump" "$R14_PG/store/bench.dump"
		pg_as "$R14_PGBIN/dropdb" -h "$R14_PG" -U postgres src
		touch "$R14_PG/bench.dump.done"
	fi
	rm -rf "$R14_PG/store.idx"
	"$VBFSCTL" build "$R14_PG/store" "$R14_PG/store.idx" >/dev/null || return 1
	R14_PG_BYTES=$(stat -c %s "$R14_PG/store/bench.dump")
}

pg_restore_from() {   # pg_restore_from DUMPFILE
	pg_as "$R14_PGBIN/dropdb" -h "$R14_PG" -U postgres --if-exists restored >/dev/null 2>&1
	pg_as "$R14_PGBIN/createdb" -h "$R14_PG" -U postgres restored &&
		pg_as "$R14_PGBIN/pg_restore" -h "$R14_PG" -U postgres -d restored --no-owner -j 1 "$1"
}

r14_pg_run() {
	[ -n "${R14_PG_BYTES:-}" ] || r14_pg_setup || { note "pg: setup failed; skipped"; r14_pg_stop; return 0; }
	measure pg.store pg store "pg_restore -j 1 of a $((R14_PG_BYTES >> 20)) MiB dump, straight" "$R14_PG_BYTES" \
		pg_restore_from "$R14_PG/store/bench.dump"
	# allow_other: the server's user reads the dump through the mount.
	if start_mount "$M/r14" "$M/r14" "$VBFS" -f -o "index=$R14_PG/store.idx,log=$EVENTS,allow_other" "$R14_PG/store" "$M/r14"; then
		measure pg.vbfs pg vbfs "pg_restore -j 1 through vbfs" "$R14_PG_BYTES" pg_restore_from "$M/r14/bench.dump"
		stop_mount "$M/r14"
	fi
}

r14_sections() { section tree || section small || section meta || section limit || section cold || section throttle || section pg; }

r14_run() {
	section limit && r14_limit_run
	section tree && r14_tree_run
	section small && r14_small_run
	section meta && r14_meta_run
	section cold && r14_cold_run
	section throttle && r14_throttle_run
	section pg && r14_pg_run
}

r14_finish() { r14_throttle_cleanup; r14_pg_stop; }

# r14_ratios: the targets of issue 14; L from H2 and bindfs's first read.
r14_ratios() {
	local h2 b v o l
	echo
	echo "targets (issue 14)"
	for how in tar cp rsync; do
		ratio "tree $how vbfs / bindfs" "tree.vbfs-$how" "tree.bindfs-$how" 1.0
		ratio "tree $how vbfs / vbfs one-file first read" "tree.vbfs-$how" one.vbfs-first 0.85
	done
	for how in tar cp; do ratio "small $how vbfs / bindfs" "small.vbfs-$how" "small.bindfs-$how" 1.5; done
	# metadata: seconds, so the store's time over vbfs's
	for how in find_ls ls_lR du_s; do
		ratio "meta ${how/_/ -}: store time / vbfs time" "meta.store-$how" "meta.vbfs-$how" 0.8
		ratio "meta ${how/_/ -} second pass: store / vbfs" "meta2.store-$how" "meta2.vbfs-$how" 0.8
	done
	h2=$(get limit.h2); b=$(get one.bindfs-first); v=$(get one.vbfs-first); o=$(get one.openssl)
	if [ -n "$h2" ] && [ -n "$b" ] && [ -n "$v" ]; then
		l=$(awk -v h="$h2" -v b="$b" 'BEGIN { printf "%.1f", 1 / (1 / h + 1 / b) }')
		echo "limit L = 1/(1/H2 + 1/B) = 1/(1/$h2 + 1/$b) = $l MB/s"
		# a CSV row for L, so that ratio() reads it like a measured figure
		printf 'limit.L,limit,estimate,L,MB/s,%s,%s,%s,1,"1/(1/H2 + 1/B)"\n' "$l" "$l" "$l" >>"$CSV"
		ratio "one-file first read vbfs / L" one.vbfs-first limit.L 0.9
	fi
	ratio "one-file first read vbfs / openssl dgst" one.vbfs-first one.openssl 1.3
	ratio "throttled: vbfs cat / device cat (cold)" throttle.vbfs-cat throttle.device-cat 0.95
	ratio "throttled: vbfs tar / device tar (cold)" throttle.vbfs-tar throttle.device-tar 0.95
	ratio "pg_restore: store time / vbfs time (MB/s vbfs / store)" pg.vbfs pg.store 0.95
	ratio "cold tar: vbfs / bindfs" cold.vbfs-tar cold.bindfs-tar 1.0
	ratio "cold one-file: vbfs / bindfs" cold.vbfs-one cold.bindfs-one 0.9
	ratio "memory: VmHWM after 100k small files / after the tree" mem.small.hwm mem.tree.hwm 1.1 max
	ratio "memory: RssAnon after 100k small files / after the tree" mem.small.anon mem.tree.anon 1.1 max
	for rd in base; do
		[ -n "$BASE_VBFS" ] || continue
		for k in tree.%s-tar tree.%s-cp tree.%s-rsync small.%s-tar small.%s-cp one.%s-first; do
			# shellcheck disable=SC2059
			ratio "vbfs / base: $(printf "$k" x | sed 's/\.x-/ /; s/\.x//')" "$(printf "$k" vbfs)" "$(printf "$k" base)" 1.0
		done
		for how in find_ls ls_lR du_s; do ratio "vbfs / base: meta ${how/_/ -} (base time / vbfs time)" "meta.base-$how" "meta.vbfs-$how" 1.0; done
	done
}
