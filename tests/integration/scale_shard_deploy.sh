#!/bin/bash
# scale_shard_deploy.sh - the scale-out deployments in scripts/deploy/, on
# the engines' own terms without a cluster:
#   Kubernetes: the Indexed Job manifest parses and has the fields the
#     design relies on (Indexed, completions = VBFS_SHARDS, parallelism,
#     backoffLimitPerIndex, a podFailurePolicy that fails the index on exit
#     1 and ignores disruptions, the drill's image, volumes and
#     Pushgateway); then its container script runs, exactly as written, as
#     N local processes with JOB_COMPLETION_INDEX and the downward-API
#     RUN_ID set as Kubernetes sets them: the last one merges, signs and
#     pushes the metrics (to a local stand-in Pushgateway).
#   Slurm: the sbatch script submits an array and a merge that depends on
#     it with afterany (a stand-in sbatch records the calls), then runs as
#     the N array tasks with Slurm's variables and as the merge job.
# In both, the merged report has exactly the events of one unsharded scrub.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scale_store.inc"
command -v jq >/dev/null || need jq
command -v curl >/dev/null || need curl
PY=/usr/bin/python3
$PY -c 'import yaml' 2>/dev/null || need_yaml=1
[ -z "${need_yaml:-}" ] || { { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq python3-yaml; } >"$T/apt.log" 2>&1; $PY -c 'import yaml' 2>/dev/null ||
	skip "python3-yaml cannot be installed"; }

DEP=${VBFS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/scripts/deploy
JOB=$DEP/vbfs-scrub-indexed-job.yaml
SB=$DEP/vbfs-scrub.sbatch
S=$T/store I=$T/index
scale_store "$S" "$I" 400 || { fail "make the store"; finish; exit 1; }
"$VBFSCTL" verify "$S" "$I" --json >"$T/all.json" 2>/dev/null
events "$T/all.json" >"$T/all.events"
mkdir -p "$T/bin"
ln -s "$VBFSCTL" "$T/bin/vbfsctl"

# --- Kubernetes: the manifest's fields ----------------------------------------------
$PY - "$JOB" "$DEP/vbfs-drill-cronjob.yaml" >"$T/k8s.check" 2>&1 <<'PY'
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
drill = yaml.safe_load(open(sys.argv[2]))
def ok(what, cond): print(("ok " if cond else "FAIL ") + what)
ok("a CronJob of batch/v1", job["apiVersion"] == "batch/v1" and job["kind"] == "CronJob")
spec = job["spec"]["jobTemplate"]["spec"]
pod = spec["template"]["spec"]
c = pod["containers"][0]
env = {e["name"]: e for e in c["env"]}
n = int(env["VBFS_SHARDS"]["value"])
ok("completionMode Indexed", spec.get("completionMode") == "Indexed")
ok("completions = VBFS_SHARDS", spec.get("completions") == n)
ok("parallelism 1..completions", 1 <= spec.get("parallelism", 0) <= n)
ok("backoffLimitPerIndex set", spec.get("backoffLimitPerIndex", 0) >= 1)
ok("restartPolicy Never (required by backoffLimitPerIndex and podFailurePolicy)", pod.get("restartPolicy") == "Never")
rules = spec["podFailurePolicy"]["rules"]
fail1 = [r for r in rules if r.get("onExitCodes", {}).get("operator") == "In" and 1 in r["onExitCodes"]["values"]]
ok("exit 1 fails the index, no retry", len(fail1) == 1 and fail1[0]["action"] == "FailIndex"
   and fail1[0]["onExitCodes"].get("containerName") == c["name"])
ok("exit 2 is not in any rule (retried up to the limit)",
   not any(2 in r.get("onExitCodes", {}).get("values", []) for r in rules))
ok("disruptions ignored", any(r["action"] == "Ignore" and
   any(p["type"] == "DisruptionTarget" for p in r.get("onPodConditions", [])) for r in rules))
ok("RUN_ID from the Job's uid label", env["RUN_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
   == "metadata.labels['batch.kubernetes.io/controller-uid']")
def secs(d):
    import re
    return sum(float(v) * {"h": 3600, "m": 60, "s": 1}[u] for v, u in re.findall(r"([0-9.]+)([hms])", d))
ok("MAX_DURATION below activeDeadlineSeconds", secs(env["MAX_DURATION"]["value"]) < spec["activeDeadlineSeconds"])
dc = drill["spec"]["jobTemplate"]["spec"]["template"]["spec"]
ok("the drill's image", c["image"] == dc["containers"][0]["image"])
dv = {v["name"]: v for v in dc["volumes"]}
jv = {v["name"]: v for v in pod["volumes"]}
for name in ("backup", "index", "state"):
    ok("the drill's %s volume" % name, jv[name] == dv[name])
denv = {e["name"]: e.get("value") for e in dc["containers"][0]["env"]}
ok("the drill's Pushgateway", env["PUSHGATEWAY_URL"]["value"] == denv["PUSHGATEWAY_URL"])
ok("the drill's store name", env["STORE_NAME"]["value"] == denv["STORE_NAME"])
ok("command /bin/sh -c", c["command"] == ["/bin/sh", "-c"])
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
ok("TMPDIR (the index's private copy) is a writable volume",
   env["TMPDIR"]["value"] in mounts and not mounts[env["TMPDIR"]["value"]].get("readOnly"))
PY
while read -r word what; do
	if [ "$word" = ok ]; then pass "k8s: $what"; else fail "k8s: $what"; fi
done <"$T/k8s.check"
$PY - "$JOB" "$T/k8s.script" "$T/k8s.env" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
open(sys.argv[2], "w").write(c["args"][0])
with open(sys.argv[3], "w") as f:
    for e in c["env"]:
        if "value" in e:
            f.write("%s=%s\n" % (e["name"], e["value"]))
PY
N=$(sed -n 's/^VBFS_SHARDS=//p' "$T/k8s.env")
check "k8s: N read from the manifest" test "$N" -ge 2

# --- Kubernetes: the container script as N pods ----------------------------------
# A stand-in Pushgateway: records each push's path and body.
$PY - "$T/pushes" >"$T/pgw.port" 2>"$T/pgw.err" <<'PY' &
import http.server, sys, os
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "ab") as f:
            f.write(b"PATH " + self.path.encode() + b"\n" + body)
        self.send_response(200); self.end_headers()
    do_PUT = do_POST
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
_PIDS+=($!)
for i in $(seq 1 50); do [ -s "$T/pgw.port" ] && break; sleep 0.1; done
mkdir -p "$T/pv/state" "$T/pv/keys" "$T/pv/scratch"
"$VBFSCTL" keygen "$T/pv/keys/report.key" "$T/pv/keys/report.pub" >/dev/null 2>&1
pod() {   # pod K: one pod of the Indexed Job, its env as the manifest and Kubernetes set it
	env -i PATH="$T/bin:/usr/bin:/bin" $(grep -v -e '^STORE_DIR=' -e '^INDEX_DIR=' -e '^STATE_DIR=' \
		-e '^REPORT_DIR=' -e '^KEY_DIR=' -e '^PUSHGATEWAY_URL=' -e '^TMPDIR=' "$T/k8s.env") \
		TMPDIR="$T/pv/scratch" \
		STORE_DIR="$S" INDEX_DIR="$I" STATE_DIR="$T/pv/state" REPORT_DIR="$T/pv/state/reports" \
		KEY_DIR="$T/pv/keys" PUSHGATEWAY_URL="http://127.0.0.1:$(cat "$T/pgw.port")" \
		RUN_ID=6f1c-uid JOB_COMPLETION_INDEX="$1" /bin/sh -c "$(cat "$T/k8s.script")"
}
pids=()
for k in $(seq 0 $((N - 1))); do pod "$k" >"$T/pod-$k.out" 2>"$T/pod-$k.err" & pids+=($!); done
codes=
for p in "${pids[@]}"; do wait "$p"; codes="$codes $?"; done
echo "# pod exit statuses:$codes"
check "k8s: every pod exits 0 or 1 (1 = damage in its shard)" \
	sh -c "! echo '$codes' | grep -qv '^\( [01]\)*$'"
RUN=$T/pv/state/reports/scrub-pgdump-6f1c-uid
expect_eq "k8s: N shard reports" "$N" "$(ls "$RUN" | grep -c '^shard-[0-9]*\.json$')"
expect_eq "k8s: exactly one pod merged" 1 "$(cat "$T"/pod-*.err | grep -c 'vbfs-scrub: merge of')"
check "k8s: the merge exited 1 (damage)" grep -q "vbfs-scrub: merge of $N shards: exit 1" $T/pod-*.err
check "k8s: merged events equal one unsharded scrub's" cmp -s "$T/all.events" <(events "$RUN/merged.json")
expect_status "k8s: the merged report is signed by the key" 1 "$VBFSCTL" merge "$RUN/merged.json" \
	--verify-key "$T/pv/keys/report.pub"
check "k8s: metrics pushed to the Pushgateway for the store" grep -q '^PATH /metrics/job/vbfs-scrub/store/pgdump$' "$T/pushes"
check "k8s: pushed metrics say failed" grep -qx 'backup_verification_failed{store="pgdump"} 1' "$T/pushes"
check "k8s: one resume state per shard" test "$(ls "$T/pv/state" | grep -c '^scrub-pgdump-[0-9]*-of-'"$N"'\.state$')" = "$N"
# A pod retried after a crash (exit 2, eviction) rewrites its report; the merge lock keeps one merge.
pod 0 >/dev/null 2>"$T/pod-retry.err"
check "k8s: a retried pod does not merge twice" sh -c "! grep -q 'merge of' '$T/pod-retry.err'"

# --- Slurm: submission --------------------------------------------------------------
check "slurm: the script parses" bash -n "$SB"
cat >"$T/bin/sbatch" <<SBATCH
#!/bin/sh
echo "\$*" >>"$T/sbatch.calls"
n=\$(wc -l <"$T/sbatch.calls")
echo "\$((4241 + n));cluster"
SBATCH
chmod +x "$T/bin/sbatch"
env PATH="$T/bin:$PATH" VBFS_SHARDS=5 "$SB" >"$T/submit.out" 2>&1
expect_eq "slurm: two submissions" 2 "$(wc -l <"$T/sbatch.calls")"
check "slurm: an array of 5 shards" grep -q -- "--array=0-4 .* shard$" "$T/sbatch.calls"
check "slurm: the merge waits for the whole array, whatever its exit (afterany)" \
	grep -q -- "--dependency=afterany:4242 .*VBFS_RUN=4242.* merge$" "$T/sbatch.calls"
check "slurm: says the job ids" grep -q "shards 4242 (array 0-4), merge 4243" "$T/submit.out"
check "slurm: --time above the time budget" sh -c "grep -q '^#SBATCH --time=04:00:00' '$SB' && grep -q 'VBFS_MAX_DURATION:=3h50m' '$SB'"

# --- Slurm: the array tasks and the merge job, with Slurm's variables ------------------
slurm() {   # slurm MODE [K]: the script as Slurm runs it
	env -i PATH="$T/bin:/usr/bin:/bin" VBFS_STORE="$S" VBFS_INDEX="$I" VBFS_SHARDS=5 \
		VBFS_STATE_DIR="$T/slurm" VBFS_METRICS_DIR="$T/slurm/metrics" \
		VBFS_REPORT_KEY="$T/pv/keys/report.key" VBFS_REPORT_PUB="$T/pv/keys/report.pub" \
		SLURM_ARRAY_JOB_ID=4242 SLURM_ARRAY_TASK_ID="${2:-}" SLURM_ARRAY_TASK_MIN=0 \
		SLURM_ARRAY_TASK_COUNT=5 VBFS_RUN=4242 bash "$SB" "$1"
}
mkdir -p "$T/slurm/metrics"
pids=()
for k in 0 1 2 3 4; do slurm shard "$k" >/dev/null 2>"$T/task-$k.err" & pids+=($!); done
codes=
for p in "${pids[@]}"; do wait "$p"; codes="$codes $?"; done
check "slurm: tasks exit 0 or 1" sh -c "! echo '$codes' | grep -qv '^\( [01]\)*$'"
check "slurm: task 3 is shard 3/5 from Slurm's variables" grep -q "shard 3/5 (K from SLURM_ARRAY_TASK_ID" "$T/task-3.err"
expect_status "slurm: the merge job exits 1 (damage)" 1 slurm merge
check "slurm: merged events equal one unsharded scrub's" \
	cmp -s "$T/all.events" <(events "$T/slurm/reports/scrub-pgdump-4242/merged.json")
check "slurm: metrics for node_exporter" grep -qx 'backup_verification_failed{store="pgdump"} 1' "$T/slurm/metrics/vbfs-scrub-pgdump.prom"
rm "$T/slurm/reports/scrub-pgdump-4242/shard-2.json"
expect_status "slurm: a missing task makes the merge fail" 2 slurm merge
check "slurm: ... naming the shard" grep -q "shard 2/5 is missing" "$T/last.err"
finish
