#!/bin/bash
# drill_deploy.sh - what an operator deploys from scripts/deploy/ works:
# the YAML parses, the CronJob has the seed's shape (Forbid, a deadline,
# /dev/fuse + SYS_ADMIN) and its script runs a real drill, the alert rules
# use exactly the metric names vbfsctl writes and fire when they should
# (promtool test rules), and the systemd units verify and their ExecStart,
# fed the example env file, runs a real drill.
. "$(dirname "$0")/lib.sh"

DEP=${VBFS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/scripts/deploy
PY=/usr/bin/python3
export VBFS_BIN TMPDIR="$T/tmp"
mkdir -p "$TMPDIR"

need() {        # need COMMAND PACKAGE: install a Debian package if missing
	command -v "$1" >/dev/null && return 0
	echo "# installing $2 (Debian package)"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "$2"; } >>"$T/apt.log" 2>&1
	command -v "$1" >/dev/null
}
$PY -c 'import yaml' 2>/dev/null || { echo "# installing python3-yaml";
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml; } \
		>>"$T/apt.log" 2>&1; }
$PY -c 'import yaml' 2>/dev/null || skip "python3-yaml cannot be installed: $(tail -1 "$T/apt.log")"

S=$T/store I=$T/index
make_file "$S/db/app.dump" 3
printf 'hi\n' >"$S/README"
$VBFSCTL build "$S" "$I" >/dev/null 2>&1 || { fail "build the index"; finish; exit 1; }

# --- the metric names vbfsctl writes -------------------------------------------
$VBFSCTL rto --target 1h --restore true --name names --metrics "$T/names.prom" >/dev/null 2>&1
sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' "$T/names.prom" | sort >"$T/written.txt"
check "vbfsctl wrote metrics" test -s "$T/written.txt"

# --- YAML parses; the rules --------------------------------------------------------
for f in vbfs-alerts.rules.yml vbfs-alerts.prometheusrule.yaml vbfs-drill-cronjob.yaml; do
	check "$f parses as YAML" $PY -c 'import yaml,sys; yaml.safe_load(open(sys.argv[1]))' "$DEP/$f"
done
expect_eq "the seed's four alerts" \
	"BackupVerificationFailed BackupVerificationStale BackupRestoreTimeExceedsRTO BackupChecksumMismatch" \
	"$($PY -c 'import yaml,sys; print(" ".join(r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]))' "$DEP/vbfs-alerts.rules.yml")"
expect_eq "PrometheusRule carries the same groups" "True" \
	"$($PY -c 'import yaml,sys; print(yaml.safe_load(open(sys.argv[1])) == yaml.safe_load(open(sys.argv[2]))["spec"])' \
		"$DEP/vbfs-alerts.rules.yml" "$DEP/vbfs-alerts.prometheusrule.yaml")"
# Every metric name an expression uses (identifiers not followed by "(" and not
# PromQL keywords) must be one vbfsctl writes.
$PY - "$DEP/vbfs-alerts.rules.yml" >"$T/used.txt" <<'EOF'
import re, sys, yaml
kw = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
      "and", "or", "unless", "offset"}
names = set()
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        expr = re.sub(r'\{[^}]*\}|"[^"]*"', "", r["expr"])
        for m in re.finditer(r'([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?', expr):
            if not m.group(2) and m.group(1) not in kw and not re.fullmatch(r'[0-9].*', m.group(1)):
                names.add(m.group(1))
print("\n".join(sorted(names)))
EOF
check "the rules use metrics" test -s "$T/used.txt"
while read -r m; do
	check "rules metric $m is written by vbfsctl" grep -qx "$m" "$T/written.txt"
done <"$T/used.txt"
for m in backup_verification_checksum_failures backup_verification_last_success_timestamp \
	backup_verification_restore_duration_seconds backup_verification_rto_target_seconds; do
	check "SPEC metric $m is used by a rule" grep -qx "$m" "$T/used.txt"
done
check "stale means 48 h" grep -q 'time() - backup_verification_last_success_timestamp > 172800' \
	"$DEP/vbfs-alerts.rules.yml"

# promtool: the rules load, and fire on the right series at the right time.
if need promtool prometheus; then
	check "promtool check rules" sh -c "promtool check rules '$DEP/vbfs-alerts.rules.yml' >/dev/null"
	check "promtool check metrics on vbfsctl's file" sh -c "promtool check metrics <'$T/names.prom' >/dev/null 2>&1"
	# Annotations are template text (checked above); the unit test compares
	# labels only, so it runs on the rules without them.
	$PY - "$DEP/vbfs-alerts.rules.yml" "$T/rules-noann.yml" <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for g in d["groups"]:
    for r in g["rules"]:
        r.pop("annotations", None)
yaml.safe_dump(d, open(sys.argv[2], "w"))
EOF
	cat >"$T/alerts-test.yml" <<EOF
rule_files: [$T/rules-noann.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # "bad": the last drill failed with damage and took 4000 s of a 3600 s RTO;
      # it never succeeded (last success 0).  "good": all fine, succeeded "now".
      - series: 'backup_verification_failed{store="bad"}'
        values: '1x200'
      - series: 'backup_verification_failed{store="good"}'
        values: '0x200'
      - series: 'backup_verification_checksum_failures{store="bad"}'
        values: '2x200'
      - series: 'backup_verification_checksum_failures{store="good"}'
        values: '0x200'
      - series: 'backup_verification_restore_duration_seconds{store="bad"}'
        values: '4000x200'
      - series: 'backup_verification_restore_duration_seconds{store="good"}'
        values: '1200x200'
      - series: 'backup_verification_rto_target_seconds{store="bad"}'
        values: '3600x200'
      - series: 'backup_verification_rto_target_seconds{store="good"}'
        values: '3600x200'
      - series: 'backup_verification_last_success_timestamp{store="bad"}'
        values: '-180000x200'
      - series: 'backup_verification_last_success_timestamp{store="good"}'
        values: '0x200'
    alert_rule_test:
      - eval_time: 3m          # "for: 5m" not yet over
        alertname: BackupVerificationFailed
        exp_alerts: []
      - eval_time: 10m
        alertname: BackupVerificationFailed
        exp_alerts: [{exp_labels: {severity: critical, store: bad}}]
      - eval_time: 1m
        alertname: BackupChecksumMismatch
        exp_alerts: [{exp_labels: {severity: critical, store: bad}}]
      - eval_time: 1m
        alertname: BackupRestoreTimeExceedsRTO
        exp_alerts: [{exp_labels: {severity: warning, store: bad}}]
      - eval_time: 30m         # stale, but "for: 1h" not yet over
        alertname: BackupVerificationStale
        exp_alerts: []
      - eval_time: 2h
        alertname: BackupVerificationStale
        exp_alerts: [{exp_labels: {severity: warning, store: bad}}]
EOF
	if promtool test rules "$T/alerts-test.yml" >"$T/promtool.out" 2>&1; then
		pass "promtool test rules: each alert fires for the bad store only, after its 'for'"
	else
		fail "promtool test rules: $(cat "$T/promtool.out")"
	fi
else
	echo "# promtool unavailable: rule evaluation not tested"
fi

# --- the CronJob ---------------------------------------------------------------
$PY - "$DEP/vbfs-drill-cronjob.yaml" "$T/job.sh" "$T/job.env" >"$T/cron.txt" <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
job = d["spec"]["jobTemplate"]["spec"]
pod = job["template"]["spec"]
c = pod["containers"][0]
fuse = [v for v in pod["volumes"] if v.get("hostPath", {}).get("path") == "/dev/fuse"]
print("kind", d["apiVersion"], d["kind"])
print("concurrency", d["spec"]["concurrencyPolicy"])
print("deadline", isinstance(job["activeDeadlineSeconds"], int) and job["activeDeadlineSeconds"] > 0)
print("restart", pod["restartPolicy"])
print("cap", "SYS_ADMIN" in c["securityContext"]["capabilities"]["add"])
print("fuse", len(fuse) == 1 and fuse[0]["hostPath"]["type"] == "CharDevice"
      and any(m["name"] == fuse[0]["name"] and m["mountPath"] == "/dev/fuse" for m in c["volumeMounts"]))
ro = {m["mountPath"]: m.get("readOnly", False) for m in c["volumeMounts"]}
print("readonly", ro["/backup"] and ro["/index"])
open(sys.argv[2], "w").write(c["args"][0])
env = {e["name"]: e.get("value", "") for e in c["env"]}
open(sys.argv[3], "w").write("".join("%s\0%s\0" % kv for kv in env.items()))
EOF
expect_eq "CronJob: the seed's shape" "kind batch/v1 CronJob
concurrency Forbid
deadline True
restart Never
cap True
fuse True
readonly True" "$(cat "$T/cron.txt")"
# Run the job's script here, paths moved into the test dir, the validate
# command swapped for one this machine has, no Pushgateway.
mkdir -p "$T/state"
sed -i "s|/backup|$S|g; s|/index|$I|g; s|/state|$T/state|g" "$T/job.sh"
check "CronJob script: sh -n" sh -n "$T/job.sh"
(
	while IFS= read -r -d '' k && IFS= read -r -d '' v; do export "$k=$v"; done <"$T/job.env"
	export VALIDATE_CMD='cmp "$VBFS_SCRATCH"/db/app.dump "$VBFS_MOUNT"/db/app.dump' PUSHGATEWAY_URL=
	export TMPDIR="$T/tmp"      # the pod's emptyDir
	export PATH="$(dirname "$VBFSCTL"):$PATH"
	sh "$T/job.sh"
) >"$T/job.out" 2>&1
RC=$?
expect_eq "CronJob script: the drill passes" "0" "$RC"
[ "$RC" = 0 ] || sed 's/^/#   /' "$T/job.out"
check "CronJob script: history written" test "$(grep -c '"met":true' "$T/state/drill-pgdump.jsonl" 2>/dev/null)" = 1
check "CronJob script: metrics written" grep -q '^backup_verification_failed{store="pgdump"} 0$' "$T/state/drill-pgdump.prom"
check "CronJob script: report written" grep -q '<svg class="chart"' "$T/state/drill-pgdump.html"

# --- systemd units ---------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	# verify looks commands up in systemd's own path: point it at this build.
	for u in service timer; do
		sed "s|^\(Exec[A-Za-z]*=-\?\)vbfsctl |\1$VBFSCTL |" "$DEP/vbfs-drill@.$u" >"$T/units/vbfs-drill@demo.$u"
	done
	systemd-analyze verify --man=no "$T/units/vbfs-drill@demo.service" "$T/units/vbfs-drill@demo.timer" \
		>"$T/verify.out" 2>&1
	expect_eq "systemd-analyze verify: clean" "0" "$?$(cat "$T/verify.out")"
fi
check "timer: nightly" grep -qx 'OnCalendar=\*-\*-\* 03:00:00' "$DEP/vbfs-drill@.timer"
check "service: SIGTERM reaches vbfsctl alone" grep -qx 'KillMode=mixed' "$DEP/vbfs-drill@.service"
# Run the unit's ExecStart as systemd would (env defaults, then the env file
# with systemd's quote rules, "${VAR}" = one argument, %i = instance), with
# the example env file pointed at this test's store.
sed -e "s|^VBFS_STORE=.*|VBFS_STORE=$S|; s|^VBFS_INDEX=.*|VBFS_INDEX=$I|" \
	-e "s|^VBFS_METRICS_DIR=.*|VBFS_METRICS_DIR=$T/textfile|" "$DEP/drill.env.example" >"$T/drill-demo.env"
mkdir -p "$T/textfile" "$T/varlib"
$PY - "$DEP/vbfs-drill@.service" "$T/drill-demo.env" demo "$T/varlib" >"$T/execstart.bin" <<'EOF'
import re, shlex, sys
unit, envfile, inst, varlib = sys.argv[1:5]
text = open(unit).read().replace("\\\n", " ")
env = {}
def envfile_value(v):           # systemd: quotes removed, nothing expanded
    out, q, i = "", None, 0
    while i < len(v):
        c = v[i]
        if q == "'":
            if c == "'": q = None
            else: out += c
        elif c == "\\" and i + 1 < len(v):
            i += 1; out += v[i]
        elif q == '"':
            if c == '"': q = None
            else: out += c
        elif c in "'\"": q = c
        else: out += c
        i += 1
    return out.strip()
for line in text.splitlines():
    if line.startswith("Environment="):
        k, _, v = line[len("Environment="):].partition("=")
        env[k] = v
for line in open(envfile):
    line = line.strip()
    if line and not line.startswith("#") and "=" in line:
        k, _, v = line.partition("=")
        env[k.strip()] = envfile_value(v)
cmd = [l for l in text.splitlines() if l.startswith("ExecStart=")][0][len("ExecStart="):]
argv = []
for w in shlex.split(cmd.replace("%i", inst)):
    argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), w).replace("/var/lib/vbfs", varlib))
sys.stdout.write("".join(a + "\0" for a in argv))
EOF
mapfile -d '' ARGV <"$T/execstart.bin"
expect_eq "ExecStart: the drill command" "vbfsctl rto --name demo" "${ARGV[*]:0:4}"
expect_eq "ExecStart: restore command intact" 'cp -a "$VBFS_MOUNT"/. "$VBFS_SCRATCH"/' \
	"$(for ((i = 0; i < ${#ARGV[@]}; i++)); do [ "${ARGV[i]}" = --restore ] && echo "${ARGV[i+1]}"; done)"
ARGV[0]=$VBFSCTL
expect_status "ExecStart with the example env file: drill met" 0 "${ARGV[@]}"
check "ExecStart: history in the state dir" grep -q '"store":"demo"' "$T/varlib/drill-demo.jsonl"
check "ExecStart: metrics for the textfile collector" \
	grep -q '^backup_verification_failed{store="demo"} 0$' "$T/textfile/vbfs-drill-demo.prom"
check "no mount or scratch left" test -z "$(awk -v t="$T" 'index($2, t) == 1' /proc/mounts)$(ls -A "$TMPDIR")"

finish
