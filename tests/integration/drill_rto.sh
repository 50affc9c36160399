#!/bin/bash
# drill_rto.sh - `vbfsctl rto` through real vbfs mounts: met and missed
# targets, a failing restore, a restore that swallows read errors, the mount
# phase failing, history and --trend arithmetic, the Prometheus metrics file
# (checked by a strict parser), and Ctrl-C leaving nothing behind.
. "$(dirname "$0")/lib.sh"

export VBFS_BIN
export TMPDIR="$T/tmp"
mkdir -p "$TMPDIR"
PY=/usr/bin/python3

S=$T/store I=$T/index H=$T/history.jsonl P=$T/prom/vbfs-drill-demo.prom
mkdir -p "$T/prom"
make_file "$S/db/app.dump" 5
make_file "$S/base/base.tar" 3
printf 'hello\n' >"$S/README"
$VBFSCTL build "$S" "$I" >/dev/null 2>&1 || { fail "build the index"; finish; exit 1; }

leftovers() {
	[ -z "$(awk -v t="$T" 'index($2, t) == 1' /proc/mounts)" ] && [ -z "$(ls -A "$TMPDIR")" ]
}
last_run() { tail -n 1 "$H" | $PY -c "import json,sys; d=json.loads(sys.stdin.read()); print($1)"; }
runs() { grep -c . "$H"; }

# A strict reader of the Prometheus text format 0.0.4: every line a HELP,
# TYPE or sample; names and label names valid; label values properly
# escaped; values parse; TYPE before its samples, once; families contiguous;
# no duplicate series; a final newline.  Prints "name{labels} value" lines.
cat >"$T/promparse.py" <<'EOF'
import re, sys
NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LNAME = r'[a-zA-Z_][a-zA-Z0-9_]*'
LVAL = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r'^(%s)(?:\{((?:%s=%s)(?:,%s=%s)*,?)?\})? ([^ ]+)(?: (-?[0-9]+))?$'
                    % (NAME, LNAME, LVAL, LNAME, LVAL))
def die(n, msg):
    sys.exit("line %d: %s" % (n, msg))
text = open(sys.argv[1], encoding="utf-8").read()
if not text.endswith("\n"):
    sys.exit("no final newline")
types, helps, seen, done, current, out = {}, set(), set(), set(), None, []
for n, line in enumerate(text[:-1].split("\n"), 1):
    if line.startswith("#"):
        m = re.match(r'^# (HELP|TYPE) (%s) (.*)$' % NAME, line)
        if not m:
            if line.startswith("# HELP") or line.startswith("# TYPE"):
                die(n, "malformed " + line)
            continue
        kind, name, rest = m.groups()
        if kind == "TYPE":
            if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                die(n, "bad type " + rest)
            if name in types or name in done:
                die(n, "second TYPE for " + name)
            types[name] = rest
        else:
            if name in helps:
                die(n, "second HELP for " + name)
            helps.add(name)
        if current != name:
            if current:
                done.add(current)
            current = name
        continue
    m = SAMPLE.match(line)
    if not m:
        die(n, "not a sample: %r" % line)
    name, labels, value, _ = m.groups()
    if name != current:
        if name in done:
            die(n, "family %s is not contiguous" % name)
        if current:
            done.add(current)
        current = name
    if name not in types:
        die(n, "sample before its TYPE: " + name)
    if value not in ("NaN", "+Inf", "-Inf"):
        try:
            float(value)
        except ValueError:
            die(n, "bad value " + value)
    pairs = re.findall(r'(%s)=(%s)' % (LNAME, LVAL), labels or "")
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        die(n, "repeated label")
    series = (name, tuple(sorted(pairs)))
    if series in seen:
        die(n, "duplicate series " + line)
    seen.add(series)
    out.append(line)
print("\n".join(out))
EOF
metric() {      # metric NAME [LABELS-REGEX]: the value of one series
	$PY "$T/promparse.py" "$P" | awk -v n="$1" -v l="${2:-}" '
		{ split($0, a, " "); s = a[1]; v = a[2]; nm = s; sub(/\{.*/, "", nm)
		  if (nm == n && (l == "" || index(s, l))) print v }'
}

# --- met: restore through the mount, validate the copy -----------------------
RESTORE='cp -a "$VBFS_MOUNT"/. "$VBFS_SCRATCH"/ && echo restored-ok'
VALIDATE='diff -r "$VBFS_MOUNT" "$VBFS_SCRATCH" && echo validated-ok >&2'
expect_status "rto met" 0 $VBFSCTL rto --target 1h --store "$S" --index "$I" --name demo \
	--restore "$RESTORE" --validate "$VALIDATE" --history "$H" --metrics "$P"
check "restore output passed through (stdout)" grep -qx restored-ok "$T/last.out"
check "validate output passed through (stderr)" grep -qx validated-ok "$T/last.err"
check "text verdict" grep -q '^rto: MET: ' "$T/last.err"
expect_eq "stdout holds only the commands' output" "restored-ok" "$(cat "$T/last.out")"
expect_eq "met: one history line" "1" "$(runs)"
expect_eq "met: history keys" "True True demo 3600 0 None" \
	"$(last_run 'd["ok"], d["met"], d["store"], d["target_seconds"], d["events"], d["failed_phase"]' | tr -d "(),'")"
expect_eq "met: three phases" "['mount', 'restore', 'validate']" "$(last_run 'sorted(d["phases"])')"
expect_eq "met: total = sum of phases" "True" \
	"$(last_run 'abs(d["total_seconds"] - sum(d["phases"].values())) < 1e-6')"
expect_eq "met: time is RFC 3339 UTC" "True" \
	"$(last_run '__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["time"]) is not None')"
expect_eq "met: every byte verified by the mount" "$((8 * 1048576 + 6))" "$(last_run 'd["bytes_verified"]')"
expect_eq "met: store_path" "$S" "$(last_run 'd["store_path"]')"
check "met: no mount or scratch left" leftovers

# metrics after a met run
if $PY "$T/promparse.py" "$P" >"$T/series.txt" 2>"$T/parse.err"; then
	pass "metrics parse as Prometheus text"
else
	fail "metrics parse: $(cat "$T/parse.err")"
fi
if command -v promtool >/dev/null; then    # Debian's prometheus package, when installed
	check "promtool check metrics agrees" sh -c "promtool check metrics <'$P' >/dev/null 2>&1"
fi
for m in backup_verification_checksum_failures backup_verification_last_success_timestamp \
	backup_verification_restore_duration_seconds backup_verification_rto_target_seconds \
	backup_verification_failed vbfs_blocks_verified_total vbfs_bytes_verified_total; do
	check "metric $m{store=\"demo\"} present" grep -q "^$m{store=\"demo\"} " "$T/series.txt"
done
for e in corrupt missing unreadable changed unindexed transient; do
	check "zero-valued vbfs_events_total{event=\"$e\"}" \
		grep -qx "vbfs_events_total{store=\"demo\",event=\"$e\"} 0" "$T/series.txt"
done
expect_eq "metric: failed 0" "0" "$(metric backup_verification_failed)"
expect_eq "metric: target" "3600" "$(metric backup_verification_rto_target_seconds)"
expect_eq "metric: duration = history total" "True" "$($PY -c "print(abs($(metric backup_verification_restore_duration_seconds) - $(last_run 'd["total_seconds"]')) < 1e-5)")"
T_MET=$(last_run '__import__("calendar").timegm(__import__("time").strptime(d["time"], "%Y-%m-%dT%H:%M:%SZ"))')
expect_eq "metric: last success = this run" "$T_MET" "$(metric backup_verification_last_success_timestamp)"
expect_eq "metric: bytes verified" "$((8 * 1048576 + 6))" "$(metric vbfs_bytes_verified_total)"
check "no temp file left beside the metrics" test "$(ls "$T/prom")" = "vbfs-drill-demo.prom"

# --- the environment of the commands ------------------------------------------
expect_status "environment" 0 $VBFSCTL rto --target 1h --store "$S" --index "$I" \
	--restore 'mountpoint -q "$VBFS_MOUNT" && test -d "$VBFS_SCRATCH" && test -z "$(ls -A "$VBFS_SCRATCH")" && case "$VBFS_SCRATCH" in "$TMPDIR"/*) ;; *) exit 9;; esac && getfattr -n user.vbfs.index --only-values "$VBFS_MOUNT" >/dev/null 2>&1'
expect_status "no --store: no mount, VBFS_MOUNT unset" 0 $VBFSCTL rto --target 1h \
	--restore 'test -z "${VBFS_MOUNT+set}" && test -d "$VBFS_SCRATCH"'
check "no --store: only restore timed" test "$(grep -c '^rto: ' "$T/last.err")" = 3

# --- missed: the target is too short -----------------------------------------
sleep 1         # a distinct timestamp for the next run
expect_status "rto missed" 1 $VBFSCTL rto --target 0.1s --store "$S" --index "$I" --name demo \
	--restore 'sleep 0.3' --history "$H" --metrics "$P"
check "missed: says so" grep -q '^rto: MISSED: .* exceeds the 0.1 s target' "$T/last.err"
expect_eq "missed: recorded, not met, no failed phase" "False None 0" \
	"$(last_run 'd["met"], d["failed_phase"], d["events"]' | tr -d '(),')"
expect_eq "missed: restore took the sleep" "True" "$(last_run 'd["phases"]["restore"] >= 0.3')"
expect_eq "missed: metric failed 1 (the objective was not met)" "1" "$(metric backup_verification_failed)"
expect_eq "missed: metric verdict missed" "1" "$(metric backup_verification_verdict 'verdict="missed"')"
expect_eq "missed: metric duration > target" "True" \
	"$($PY -c "print($(metric backup_verification_restore_duration_seconds) > $(metric backup_verification_rto_target_seconds))")"
expect_eq "missed: last success kept from the history" "$T_MET" "$(metric backup_verification_last_success_timestamp)"

# --- a failing restore command stops the drill --------------------------------
expect_status "failing restore" 1 $VBFSCTL rto --target 1h --store "$S" --index "$I" --name demo \
	--restore 'echo partial-output; exit 3' --validate "touch $T/validate-ran" \
	--history "$H" --metrics "$P"
check "failing restore: its output passed through" grep -qx partial-output "$T/last.out"
check "failing restore: validate did not run" test ! -e "$T/validate-ran"
check "failing restore: verdict" grep -qx 'rto: FAILED: restore command failed (exit 3)' "$T/last.err"
expect_eq "failing restore: recorded" "False|restore|restore command failed (exit 3)" \
	"$(last_run '"|".join(str(x) for x in (d["met"], d["failed_phase"], d["reason"]))')"
expect_eq "failing restore: no validate phase timed" "['mount', 'restore']" "$(last_run 'sorted(d["phases"])')"
expect_eq "failing restore: metric failed 1" "1" "$(metric backup_verification_failed)"
expect_eq "failing restore: last success kept" "$T_MET" "$(metric backup_verification_last_success_timestamp)"
expect_status "failing validate" 1 $VBFSCTL rto --target 1h --restore true --validate 'exit 4'
check "failing validate: verdict" grep -qx 'rto: FAILED: validate command failed (exit 4)' "$T/last.err"
expect_status "restore killed by a signal" 1 $VBFSCTL rto --target 1h --restore 'kill -KILL $$'
check "killed: verdict" grep -qx 'rto: FAILED: restore command failed (killed by KILL)' "$T/last.err"
check "failures: no mount or scratch left" leftovers

# --- a restore that ignores read errors still fails through the event ---------
D=$T/damaged
cp -a "$S" "$D"
flip_byte "$D/db/app.dump" $((3 * 1048576 + 5))
expect_status "swallowed EIO still fails" 1 $VBFSCTL rto --target 1h --store "$D" --index "$I" \
	--name demo --restore 'cat "$VBFS_MOUNT"/db/app.dump >/dev/null 2>&1 || true' \
	--history "$H" --metrics "$P" --json
cp "$T/last.out" "$T/dmg.json"
expect_eq "swallowed: JSON says not met, damage counted, no failed phase" "False False None" \
	"$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ok"], d["met"], d["failed_phase"])' "$T/dmg.json")"
check "swallowed: events >= 1" test "$(last_run 'd["events"]')" -ge 1
check "swallowed: the event names file, block and offset" \
	grep -qx 'rto: damage: corrupt db/app.dump block 3 offset 3145728' "$T/last.err"
check "swallowed: metric checksum failures >= 1" test "$(metric backup_verification_checksum_failures)" -ge 1
expect_eq "swallowed: vbfs_events_total corrupt = 1" "1" "$(metric vbfs_events_total 'event="corrupt"')"
expect_eq "swallowed: metric failed 1" "1" "$(metric backup_verification_failed)"
expect_eq "--json: stdout is one JSON document" "ok" \
	"$($PY -c 'import json,sys; json.load(open(sys.argv[1])); print("ok")' "$T/dmg.json" 2>&1)"

# --- the mount phase fails: recorded, exit 2 ----------------------------------
mkdir -p "$T/not-an-index"
expect_status "mount fails: exit 2" 2 $VBFSCTL rto --target 1h --store "$S" --index "$T/not-an-index" \
	--name demo --restore "touch $T/restore-ran" --history "$H" --metrics "$P"
check "mount fails: restore did not run" test ! -e "$T/restore-ran"
check "mount fails: verdict names the mount" grep -q '^rto: FAILED: mount failed: vbfs exited' "$T/last.err"
expect_eq "mount fails: recorded" "False mount" "$(last_run 'd["met"], d["failed_phase"]' | tr -d "(),'")"
check "mount fails: no mount or scratch left" leftovers

# --- the mount dies during the drill: an operational error, cleaned up ------
expect_status "daemon killed mid-drill: exit 2" 2 $VBFSCTL rto --target 1h --store "$S" --index "$I" \
	--restore 'kill -KILL $(pgrep -f -- "-o index=.* $VBFS_MOUNT\$"); sleep 0.2'
check "daemon killed: says so" grep -q 'rto: vbfs mount: vbfs exited abnormally (killed by KILL)' "$T/last.err"
check "daemon killed: no mount or scratch left" leftovers

# --- history and --trend over the runs above -----------------------------------
N=$(runs)
expect_eq "history: one line per recorded run" "5" "$N"
expect_status "--trend" 0 $VBFSCTL rto --trend --history "$H" --json
expect_eq "--trend: runs, success rate" "5 0.2" \
	"$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["runs"], d["success_rate"])' "$T/last.out")"
expect_eq "--trend: means equal the history's arithmetic" "True" "$($PY - "$T/last.out" "$H" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
runs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
done = [r for r in runs if r.get("failed_phase") is None]
ok = True
for ph in ("mount", "restore", "validate"):
    xs = [r["phases"][ph] for r in done if ph in r["phases"]]
    if xs:
        ok &= abs(t["mean_seconds"][ph] - sum(xs) / len(xs)) < 1e-9
slow = max(t["mean_seconds"], key=t["mean_seconds"].get)
print(ok and t["slowest_phase"] == slow)
EOF
)"

# a known history: exact numbers
cat >"$T/known.jsonl" <<'EOF'
{"ok":true,"met":true,"store":"k","target_seconds":100,"total_seconds":40,"phases":{"mount":2,"restore":30,"validate":8},"events":0,"time":"2026-11-01T03:00:00Z","failed_phase":null}
{"ok":true,"met":true,"store":"k","target_seconds":100,"total_seconds":50,"phases":{"mount":2,"restore":40,"validate":8},"events":0,"time":"2026-11-02T03:00:00Z","failed_phase":null}
{"ok":false,"met":false,"store":"k","target_seconds":100,"total_seconds":3,"phases":{"mount":1,"restore":2},"events":0,"time":"2026-11-03T03:00:00Z","failed_phase":"restore","reason":"restore command failed (exit 1)"}
{"ok":true,"met":true,"store":"k","target_seconds":100,"total_seconds":60,"phases":{"mount":2,"restore":50,"validate":8},"events":0,"time":"2026-11-04T03:00:00Z","failed_phase":null}
EOF
expect_status "--trend on a known history" 0 $VBFSCTL rto --trend --history "$T/known.jsonl" --json
expect_eq "known: runs, met, rate, means, slowest, slope, trend" \
	"4 3 0.75 2.0 40.0 8.0 restore 10.0 slower" \
	"$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d["mean_seconds"]; print(d["runs"], d["met"], d["success_rate"], float(m["mount"]), float(m["restore"]), float(m["validate"]), d["slowest_phase"], float(d["trend_seconds_per_run"]), d["trend"])' "$T/last.out")"
expect_eq "known: recommendation" \
	"Optimize the restore phase (mean 40.0 s) to improve RTO" \
	"$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["recommendation"])' "$T/last.out")"
expect_status "--trend text" 0 $VBFSCTL rto --trend --history "$T/known.jsonl"
check "text: success rate" grep -qx 'runs: 4 (3 met, 0 missed, 1 failed, 0 damaged; success rate 75.0%)' "$T/last.err"
check "text: trend" grep -qx 'trend: getting slower, +10.000 s per run (+40.0% over 3 runs)' "$T/last.err"
check "text: slowest" grep -qx 'slowest phase: restore' "$T/last.err"
expect_status "--trend: missing history" 2 $VBFSCTL rto --trend --history "$T/none.jsonl"
printf '{"total_seconds":1,"met":true,"time":"2026-11-01T03:00:00Z"}\n{"half":\n' >"$T/torn.jsonl"
expect_status "--trend: a torn line is skipped, with a warning" 0 $VBFSCTL rto --trend --history "$T/torn.jsonl"
check "torn: warning names the line" grep -q 'not a run record, skipped (first: line 2)' "$T/last.err"

# --- no history: last success survives in the metrics file --------------------
P2=$T/prom/nohist.prom
$VBFSCTL rto --target 1h --restore true --name nh --metrics "$P2" >/dev/null 2>&1
OLD=$($PY "$T/promparse.py" "$P2" | sed -n 's/^backup_verification_last_success_timestamp{store="nh"} //p')
sleep 1
$VBFSCTL rto --target 1h --restore false --name nh --metrics "$P2" >/dev/null 2>&1
expect_eq "no history: a failed run keeps the last success" "$OLD" \
	"$($PY "$T/promparse.py" "$P2" | sed -n 's/^backup_verification_last_success_timestamp{store="nh"} //p')"
$VBFSCTL rto --target 1h --restore true --name 'we"ird\name' --metrics "$T/prom/esc.prom" >/dev/null 2>&1
check "label values escaped" grep -q '^backup_verification_failed{store="we\\"ird\\\\name"} 0$' "$T/prom/esc.prom"
parses() { $PY "$T/promparse.py" "$1" >/dev/null; }
check "escaped file parses" parses "$T/prom/esc.prom"

# --- Ctrl-C during a drill: no mount, no scratch, no history line -------------
N=$(runs)
$VBFSCTL rto --target 1h --store "$S" --index "$I" --name demo --history "$H" --metrics "$P" \
	--restore 'cp -a "$VBFS_MOUNT"/. "$VBFS_SCRATCH"/ && cd "$VBFS_MOUNT" && exec sleep 59.731' \
	>"$T/int.out" 2>"$T/int.err" &
RP=$!
_PIDS+=("$RP")
for i in $(seq 1 100); do
	[ -n "$(ls "$TMPDIR"/*/scratch 2>/dev/null)" ] && pgrep -f 'exec sleep 59.731' >/dev/null && break
	sleep 0.05
done
check "interrupt: the drill was mounted and restoring" test -n "$(awk -v t="$T" 'index($2, t) == 1' /proc/mounts)"
SLEEPER=$(pgrep -f '^sleep 59.731$' | head -1)
kill -INT "$RP"
wait "$RP"; RC=$?
expect_eq "interrupt: exit 2" "2" "$RC"
check "interrupt: says so" grep -q 'rto: interrupted by SIGINT' "$T/int.err"
check "interrupt: no mount or scratch left" leftovers
expect_eq "interrupt: nothing recorded" "$N" "$(runs)"
check "interrupt: the restore command was stopped" test -z "$SLEEPER" -o ! -d "/proc/$SLEEPER"
# SIGTERM in the mount phase's wake: same cleanup
$VBFSCTL rto --target 1h --store "$S" --index "$I" --restore 'exec sleep 59.731' >/dev/null 2>&1 &
RP=$!
_PIDS+=("$RP")
for i in $(seq 1 100); do pgrep -f '^sleep 59.731$' >/dev/null && break; sleep 0.05; done
kill -TERM "$RP"
wait "$RP"; RC=$?
expect_eq "SIGTERM: exit 2" "2" "$RC"
check "SIGTERM: no mount or scratch left" leftovers

# --- usage --------------------------------------------------------------------
expect_status "no --target" 2 $VBFSCTL rto --restore true
expect_status "no --restore" 2 $VBFSCTL rto --target 1h
expect_status "bad --target" 2 $VBFSCTL rto --target soon --restore true
expect_status "--store without --index" 2 $VBFSCTL rto --target 1h --store "$S" --restore true
expect_status "missing store" 2 $VBFSCTL rto --target 1h --store "$T/nope" --index "$I" --restore true
expect_status "--trend without --history" 2 $VBFSCTL rto --trend
expect_status "--trend with drill options" 2 $VBFSCTL rto --trend --history "$H" --restore true
expect_status "unwritable history: exit 2" 2 $VBFSCTL rto --target 1h --restore true --history "$T/no/such/dir/h"
expect_status "--help" 0 $VBFSCTL rto --help
check "no mount or scratch left at the end" leftovers

finish
