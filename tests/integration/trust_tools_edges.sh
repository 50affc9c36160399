#!/usr/bin/env bash
# trust_tools_edges.sh - the edges of "no false OK":
#  - how a script gets the verdict of a mount: the stats xattr before the
#    unmount, the exit status of `vbfs -f`, and - for a backgrounded
#    daemon, whose stderr is gone - the summary line in syslog;
#  - the stats xattr shows the store and index paths only to the mount's
#    owner (and root), not to other users of an allow_other mount;
#  - human `verify` output lists findings in the JSON's order.
. "$(dirname "$0")/lib.sh"
need jq; need getfattr attr; need setpriv util-linux
PY=/usr/bin/python3

S=$T/store I=$T/index M=$T/mnt
mkdir -p "$S/d"
make_file "$S/d/b.bin" 2
make_file "$S/a.bin" 3
printf 'z\n' >"$S/z.txt"
"$VBFSCTL" build "$S" "$I" >/dev/null 2>&1 || { fail "build"; finish; exit; }
flip_byte "$S/a.bin" 2100000
flip_byte "$S/d/b.bin" 10
flip_byte "$S/a.bin" 10

# --- the verdict of a foreground mount: stats xattr, then the exit status --------
# (the mount reads d/b.bin, damaged in its first block only: one event)
vbfs_mount "$S" "$I" "$M" || { fail "mount"; finish; exit; }
cat "$M/d/b.bin" >/dev/null 2>&1
expect_eq "stats xattr before the unmount: damage_events" 1 \
	"$(getfattr -n user.vbfs.stats --only-values "$M" 2>/dev/null | jq .damage_events)"
vbfs_umount "$M"
expect_eq "vbfs -f: exit 1 after damage" 1 "$VBFS_STATUS"
check "vbfs -f: the summary on stderr" \
	grep -q "^vbfs: unmounted $S: .* 1 damage event, corrupt 1$" "$M.stderr"

# --- a backgrounded daemon: the summary goes to syslog ----------------------------
# With no syslog daemon here, listen on /dev/log ourselves (only when nobody
# else does; the socket is removed again).
cat >"$T/listen.py" <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[2], "w").close()
s.settimeout(60)
with open(sys.argv[1], "ab", buffering=0) as f:
    try:
        while True:
            f.write(s.recv(65536) + b"\n")
    except socket.timeout:
        pass
try:
    os.unlink("/dev/log")
except OSError:
    pass
EOF
if [ ! -e /dev/log ]; then
	$PY "$T/listen.py" "$T/syslog.txt" "$T/syslog.ready" &
	LISTENER=$!
	_PIDS+=("$LISTENER")
	trap 'kill $LISTENER 2>/dev/null; wait $LISTENER 2>/dev/null; [ -S /dev/log ] && rm -f /dev/log; cleanup' EXIT
	for i in $(seq 1 100); do [ -e "$T/syslog.ready" ] && break; sleep 0.05; done
	mkdir -p "$T/bg"
	"$VBFS_BIN" -o "index=$I" "$S" "$T/bg" 2>"$T/bg.stderr"
	expect_eq "background: vbfs returns 0 once mounted" 0 "$?"
	_MOUNTS+=("$T/bg")
	cat "$T/bg/d/b.bin" >/dev/null 2>&1
	fusermount3 -u "$T/bg"
	for i in $(seq 1 100); do grep -aq "unmounted $S:" "$T/syslog.txt" 2>/dev/null && break; sleep 0.05; done
	check "background: the summary is in syslog, as an error" \
		grep -aq "^<27>.*vbfs\[[0-9]*\]: unmounted $S: .* 1 damage event, corrupt 1$" "$T/syslog.txt"
	expect_eq "background: nothing on the terminal" "" "$(cat "$T/bg.stderr")"
	kill "$LISTENER" 2>/dev/null; wait "$LISTENER" 2>/dev/null
	[ -S /dev/log ] && rm -f /dev/log
else
	echo "# /dev/log exists (a syslog daemon runs): the background summary goes there; not checked"
fi

# --- the stats xattr and another user ----------------------------------------------
chmod 0755 "$T"
vbfs_mount "$S" "$I" "$M" allow_other || { fail "mount allow_other"; finish; exit; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
owner=$(getfattr -n user.vbfs.stats --only-values "$M" 2>/dev/null)
other=$(as_nobody getfattr -n user.vbfs.stats --only-values "$M" 2>/dev/null)
expect_eq "owner: the stats name the store and the index" "$S $I" \
	"$(jq -r '"\(.store) \(.index)"' <<<"$owner")"
expect_eq "another user: the counters, without the paths" "null null 0" \
	"$(jq -r '"\(.store) \(.index) \(.damage_events)"' <<<"$other")"
check "another user: no path anywhere in the stats" bash -c "! grep -qF '$T' <<<'$other'"
expect_eq "another user: user.vbfs.index is refused" "Permission denied" \
	"$(as_nobody getfattr -n user.vbfs.index --only-values "$M" 2>&1 >/dev/null | sed 's/.*: //')"
# ... who can still run a sample drill on it, naming the index themselves
as_nobody "$VBFSCTL" sample --mount "$M" -n 1 --seed 1 >/dev/null 2>"$T/nb.err"
expect_eq "another user, sample --mount without --index: exit 2" 2 "$?"
check "  ... asks for --index" grep -q "the mount does not tell its index to this user: give --index" "$T/nb.err"
cp -a "$I" "$T/nb-index" && chown -R 65534:65534 "$T/nb-index"
as_nobody env TMPDIR=/tmp "$VBFSCTL" sample --mount "$M" --index "$T/nb-index" -n 3 --seed 1 --json >"$T/nb.out" 2>"$T/nb.err"
expect_eq "another user, sample --mount --index: the drill runs (a damaged store: exit 1)" 1 "$?"
expect_eq "  ... and finds the damage" damaged "$(jq -r .verdict "$T/nb.out")"
vbfs_umount "$M"

# --- human verify output in the JSON's order ------------------------------------------
expect_status "verify: damage" 1 "$VBFSCTL" verify "$S" "$I" --json --jobs 4
expect_eq "verify: the findings on stderr in the order of the JSON events" \
	"$(jq -r '.events[] | "\(.path) \(.block)"' "$T/last.out")" \
	"$(grep ': FAIL ' "$T/last.err" | sed 's/^\([^:]*\): FAIL [a-z]* block \([0-9]*\) .*/\1 \2/')"
expect_eq "verify: sorted by path, then block" "a.bin 0|a.bin 2|d/b.bin 0" \
	"$(grep ': FAIL ' "$T/last.err" | sed 's/^\([^:]*\): FAIL [a-z]* block \([0-9]*\) .*/\1 \2/' | paste -sd'|')"

finish
