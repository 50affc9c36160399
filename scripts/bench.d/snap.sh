# scripts/bench.d/snap.sh - the `snap` section of scripts/bench: backups as
# they are laid out (doc/snapshots.md).  Sourced by scripts/bench after its
# helpers (def, put, timeit, start_mount, stop_mount, random_stream, note).
#
#   snap.build-hashed     build of a 30-snapshot rsnapshot-style tree (100
#       files of 1 MiB, one replaced per snapshot): bytes_hashed / the
#       distinct data (x; 1.00 = each inode once)
#   snap.reuse-hashed     build --reuse of the newest snapshot (1% changed)
#       from the previous one's index: bytes hashed, % of the snapshot
#   snap.rsync-disk       rsync -aH of the tree through the mount: disk used /
#       the store's (x)
#   snap.sparse-store / snap.sparse-vbfs   cp --sparse=always of a 5 GiB
#       file holding 2 MiB of data, from the store and through the mount (s)
#   snap.sparse-alloc     what that copy allocates (KiB)
#   snap.pgbr-store / snap.pgbr-vbfs       pgbackrest restore of a full +
#       diff + incr chain (pgbench scale 10) from the store and through a
#       fresh mount (s), in turn, the order swapped every run; skipped when
#       pgbackrest or PostgreSQL is missing
#   snap.pgbr-mount       that mount's start (s), not in the restore's time
SNAP_USER=vbfsdrill

snap_setup() {
	SN=$W/snap
	mkdir -p "$SN"
	if [ ! -e "$SN/tree/.done" ]; then
		rm -rf "$SN/tree"; mkdir -p "$SN/tree/daily.29"
		local i s
		for i in $(seq 1 100); do random_stream "snap$i" | head -c 1048576 >"$SN/tree/daily.29/f$i"; done
		for s in $(seq 28 -1 0); do   # each snapshot links the one before, one file new
			cp -al "$SN/tree/daily.$((s + 1))" "$SN/tree/daily.$s"
			rm "$SN/tree/daily.$s/f$((s % 100 + 1))"
			random_stream "snap-$s" | head -c 1048576 >"$SN/tree/daily.$s/f$((s % 100 + 1))"
		done
		touch "$SN/tree/.done"
	fi
	if [ ! -e "$SN/sparse/.done" ]; then
		rm -rf "$SN/sparse"; mkdir -p "$SN/sparse"
		truncate -s 5G "$SN/sparse/vm.img"
		random_stream sparse | head -c $((2 * 1048576)) |
			dd of="$SN/sparse/vm.img" bs=1M seek=4700 conv=notrunc status=none
		touch "$SN/sparse/.done"
	fi
	rm -rf "$IDX/snap-tree" "$IDX/snap-sparse"
	"$VBFSCTL" build "$SN/tree" "$IDX/snap-tree" >/dev/null 2>&1 || die "vbfsctl build of the snapshot tree failed"
	"$VBFSCTL" build "$SN/sparse" "$IDX/snap-sparse" >/dev/null 2>&1 || die "vbfsctl build of the sparse file failed"
	SNAP_PGBR=0
	snap_pgbr_setup && SNAP_PGBR=1
}

# A cluster's full, diff and incr backups in $SN/pgbr/store/repo (kept).
snap_pgbr_setup() {
	local P=$SN/pgbr bin
	command -v pgbackrest >/dev/null || { note "snap: no pgbackrest: skipping its restore"; return 1; }
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
	[ -x "$bin/initdb" ] || { note "snap: no PostgreSQL: skipping the pgBackRest restore"; return 1; }
	id -u "$SNAP_USER" >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin "$SNAP_USER" || return 1
	SNAP_CONF=$P/restore.conf
	if [ ! -e "$P/.done" ]; then
		rm -rf "$P"; mkdir -p "$P"/{data,sock,log,lock,spool,target} "$P/store/repo"
		chown -R "$SNAP_USER": "$P"
		chmod 0755 "$P" "$P/store"; chmod 0700 "$P/data" "$P/sock"
		cat >"$P/backup.conf" <<EOF
[global]
repo1-path=$P/store/repo
log-path=$P/log
lock-path=$P/lock
spool-path=$P/spool
log-level-console=warn
start-fast=y
compress-type=lz4
repo1-retention-full=2
[demo]
pg1-path=$P/data
pg1-socket-path=$P/sock
EOF
		local as=(runuser -u "$SNAP_USER" -- env PGHOST="$P/sock" PGUSER=postgres)
		local br=("${as[@]}" pgbackrest --config="$P/backup.conf" --stanza=demo)
		"${as[@]}" "$bin/initdb" -D "$P/data" -U postgres -A trust --no-sync >/dev/null 2>&1 &&
		"${as[@]}" "$bin/pg_ctl" -D "$P/data" -l "$P/log/server.log" -w -o "-c listen_addresses='' \
-c unix_socket_directories='$P/sock' -c fsync=off -c archive_mode=on \
-c archive_command='pgbackrest --config=$P/backup.conf --stanza=demo archive-push %p'" start >/dev/null 2>&1 &&
		"${br[@]}" stanza-create >/dev/null 2>&1 && "${as[@]}" "$bin/createdb" bench &&
		"${as[@]}" "$bin/pgbench" -i -s 10 -q bench >/dev/null 2>&1 &&
		"${br[@]}" --type=full backup && "${as[@]}" "$bin/pgbench" -t 500 -c 2 bench >/dev/null 2>&1 &&
		"${br[@]}" --type=diff backup && "${as[@]}" "$bin/pgbench" -t 500 -c 2 bench >/dev/null 2>&1 &&
		"${br[@]}" --type=incr backup && touch "$P/.done"
		"${as[@]}" "$bin/pg_ctl" -D "$P/data" -m fast -w stop >/dev/null 2>&1
		[ -e "$P/.done" ] || { note "snap: making the pgBackRest repository failed: skipping its restore"; return 1; }
	fi
	rm -rf "$IDX/snap-pgbr"
	"$VBFSCTL" build "$P/store" "$IDX/snap-pgbr" >/dev/null 2>&1 || return 1
	return 0
}

snap_pgbr_store() {
	def snap.pgbr-store snap store restore s "pgbackrest restore of full+diff+incr (pgbench scale 10), from the store"
	snap_pgbr_restore "$SN/pgbr/store/repo" && put snap.pgbr-store "$T"
}

snap_pgbr_vbfs() {
	local m=$M/snap
	def snap.pgbr-mount snap vbfs mount s "start of the mount for that restore (not in its time)"
	timeit start_mount "$m" "$m/repo" "$VBFS" -f -o "index=$IDX/snap-pgbr,allow_other" "$SN/pgbr/store" "$m" || return 0
	put snap.pgbr-mount "$T"
	chmod go+x "$M" 2>/dev/null
	def snap.pgbr-vbfs snap vbfs restore s "pgbackrest restore of full+diff+incr (pgbench scale 10), through the mount"
	snap_pgbr_restore "$m/repo" && put snap.pgbr-vbfs "$T"
	stop_mount "$m"
}

# One restore of the chain from REPO into a fresh target: sets T.
snap_pgbr_restore() {
	local P=$SN/pgbr repo=$1
	rm -rf "$P/target"; mkdir -p "$P/target"; chown "$SNAP_USER": "$P/target"; chmod 0700 "$P/target"
	cat >"$SNAP_CONF" <<EOF
[global]
repo1-path=$repo
log-path=$P/log
lock-path=$P/lock
spool-path=$P/spool
log-level-console=warn
[demo]
pg1-path=$P/target
EOF
	chmod 0644 "$SNAP_CONF"
	timeit runuser -u "$SNAP_USER" -- pgbackrest --config="$SNAP_CONF" --stanza=demo --type=immediate restore
}

snap_run() {
	local js distinct m=$M/snap
	# Build of the tree: each inode hashed once.
	rm -rf "$IDX/snap-b"
	js=$("$VBFSCTL" build "$SN/tree" "$IDX/snap-b" --json 2>/dev/null)
	distinct=$(find "$SN/tree" -type f -printf '%i %s\n' | sort -u | awk '{ s += $2 } END { print s }')
	def snap.build-hashed snap vbfsctl "bytes hashed" x "build of 30 hard-linked snapshots: bytes_hashed / distinct data"
	put snap.build-hashed "$(jq -r --argjson d "$distinct" '.bytes_hashed / $d * 100 | floor / 100' <<<"$js")"
	# --reuse: the newest snapshot from the previous one's index.
	rm -rf "$IDX/snap-r1" "$IDX/snap-r0"
	"$VBFSCTL" build "$SN/tree/daily.1" "$IDX/snap-r1" >/dev/null 2>&1
	js=$("$VBFSCTL" build "$SN/tree/daily.0" "$IDX/snap-r0" --reuse "$IDX/snap-r1" --json 2>/dev/null)
	def snap.reuse-hashed snap vbfsctl "bytes hashed" % "build --reuse of a snapshot that changed 1%: bytes hashed / its bytes"
	put snap.reuse-hashed "$(jq -r '.bytes_hashed * 100 / (.bytes_hashed + .bytes_reused) * 100 | floor / 100' <<<"$js")"
	# rsync -aH through the mount: the store's disk, not 30 times it.
	if start_mount "$m" "$m/daily.0" "$VBFS" -f -o "index=$IDX/snap-tree" "$SN/tree" "$m"; then
		rm -rf "$W/snap-rsync"
		rsync -aH "$m/" "$W/snap-rsync/"
		def snap.rsync-disk snap vbfs disk x "rsync -aH of the 30 snapshots through the mount: disk used / the store's"
		put snap.rsync-disk "$(awk -v a="$(du -sk "$W/snap-rsync" | cut -f1)" -v b="$(du -sk "$SN/tree" | cut -f1)" 'BEGIN { printf "%.2f", a / b }')"
		rm -rf "$W/snap-rsync"
		stop_mount "$m"
	fi
	# cp --sparse=always of 5 GiB with 2 MiB of data.
	rm -f "$W/snap-copy.img"
	def snap.sparse-store snap store cp s "cp --sparse=always of a 5 GiB file with 2 MiB of data, from the store"
	timeit cp --sparse=always "$SN/sparse/vm.img" "$W/snap-copy.img" && put snap.sparse-store "$T"
	rm -f "$W/snap-copy.img"
	if start_mount "$m" "$m/vm.img" "$VBFS" -f -o "index=$IDX/snap-sparse" "$SN/sparse" "$m"; then
		def snap.sparse-vbfs snap vbfs cp s "cp --sparse=always of a 5 GiB file with 2 MiB of data, through the mount"
		timeit cp --sparse=always "$m/vm.img" "$W/snap-copy.img" && put snap.sparse-vbfs "$T"
		def snap.sparse-alloc snap vbfs alloc KiB "what that copy allocates"
		put snap.sparse-alloc "$(du -k "$W/snap-copy.img" | cut -f1)"
		rm -f "$W/snap-copy.img"
		stop_mount "$m"
	fi
	[ "$SNAP_PGBR" = 1 ] || return 0
	# Store and mount in turn, the order swapped every run (a run's second
	# restore finds the machine as the first left it); each mount is fresh,
	# so every restore through it verifies every byte it reads, and its
	# start is timed apart (snap.pgbr-mount), outside the restore's time.
	SNAP_RUN=$((${SNAP_RUN:-0} + 1))
	if [ $((SNAP_RUN % 2)) = 1 ]; then snap_pgbr_store; snap_pgbr_vbfs; else snap_pgbr_vbfs; snap_pgbr_store; fi
	rm -rf "$SN/pgbr/target"
}

snap_targets() {
	local v
	v=$(get snap.build-hashed)
	[ -n "$v" ] && printf '%-44s %8sx target = 1.00x  %s\n' "snapshot tree: bytes_hashed / distinct data" "$v" \
		"$(awk -v v="$v" 'BEGIN { print (v <= 1.005) ? "met" : "MISSED" }')"
	v=$(get snap.reuse-hashed)
	[ -n "$v" ] && printf '%-44s %8s%% target ~ 1%%     %s\n' "--reuse of a 1% change: bytes hashed" "$v" \
		"$(awk -v v="$v" 'BEGIN { print (v <= 1.5) ? "met" : "MISSED" }')"
	v=$(get snap.rsync-disk)
	[ -n "$v" ] && printf '%-44s %8sx target <= 1.05x  %s\n' "rsync -aH through vbfs: disk / the store's" "$v" \
		"$(awk -v v="$v" 'BEGIN { print (v <= 1.05) ? "met" : "MISSED" }')"
	# Reading 5 GiB through the mount takes tens of seconds: "well under"
	# that is under a second (the store's own time is printed beside it).
	v=$(get snap.sparse-vbfs)
	[ -n "$v" ] && printf '%-44s %8ss target <= 1s     %s (store: %ss, %s KiB allocated)\n' \
		"cp --sparse=always of 5 GiB through vbfs" "$v" \
		"$(awk -v v="$v" 'BEGIN { print (v <= 1) ? "met" : "MISSED" }')" "$(get snap.sparse-store)" "$(get snap.sparse-alloc)"
	ratio "pgbackrest restore: vbfs s / store s" snap.pgbr-vbfs snap.pgbr-store 1.1 max
}
