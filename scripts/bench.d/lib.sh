# scripts/bench.d/lib.sh - mount bookkeeping shared by scripts/bench and
# tests/scale/scale.sh.  Source it after setting SHM (a scratch directory
# removed on exit).  It installs an EXIT trap that unmounts every mount made
# through start_mount and stops only the daemons started there.
MOUNTS=()
declare -A LIVE=()          # pid -> mountpoint, for daemons we started
cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
	done
	for p in "${!LIVE[@]}"; do
		kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
	done
	rm -rf "${SHM:?}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_mount MNT WAITPATH CMD...: run a FUSE daemon in the foreground (as a
# child we own), wait until MNT is mounted and WAITPATH exists.  Sets MPID.
start_mount() {
	local mnt=$1 waitp=$2 i; shift 2
	mkdir -p "$mnt"
	mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
	echo "== $(date -u +%FT%TZ) $*" >>"$mnt.log"
	"$@" >>"$mnt.log" 2>&1 &
	MPID=$!
	LIVE[$MPID]=$mnt
	MOUNTS+=("$mnt")
	for i in $(seq 1 600); do
		if mountpoint -q "$mnt" && [ -e "$waitp" ]; then return 0; fi
		if ! kill -0 "$MPID" 2>/dev/null; then
			wait "$MPID"; unset "LIVE[$MPID]"
			note "$1 did not mount: $(tail -n 3 "$mnt.log" | tr '\n' ' ')"
			return 1
		fi
		sleep 0.05
	done
	note "$1 did not mount in 30 s"
	stop_mount "$mnt"
	return 1
}

# stop_mount MNT: unmount and wait for the daemon started on it.
stop_mount() {
	local mnt=$1 p
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	for p in "${!LIVE[@]}"; do
		if [ "${LIVE[$p]}" = "$mnt" ]; then
			wait "$p" 2>/dev/null
			unset "LIVE[$p]"
		fi
	done
}

# timeit CMD...: runs CMD, sets T (seconds); returns CMD's status.
timeit() {
	local s=$EPOCHREALTIME rc
	"$@"; rc=$?
	T=$(awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.6f", e - s }')
	return $rc
}
note() { echo "bench: $*" >&2; }
