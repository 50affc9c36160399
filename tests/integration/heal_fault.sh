#!/bin/bash
# heal_fault.sh - randomized fault injection against healing, reproducible.
#
# One store of mixed files (64 KiB blocks) is indexed with parity 8+2, copied
# to a replica, and both get independent random faults (faultgen.py: bit
# flips, zeroed sectors, truncations, deletions, replacements, swaps, files
# turned into directories, symlinks or FIFOs) - 500 each by default.
#
# With -o replica: every block reads back the original bytes when the store
# or the replica has it good, and fails with EIO exactly when both lost it;
# each heal is logged with source replica:DIR after the damage event it
# answers; `verify --replica` judges every block as the mount did.
# With -o parity: 0 wrong bytes; every block served from a damaged store
# block has a `healed` event from parity; every EIO has a damage event with
# repairable false; the mount's heals are exactly the scrub's repairable set.
#
# Rerun a failure with the seed it printed: VBFS_FAULT_SEED=N.
# VBFS_FAULT_SCALE=k multiplies the number of faults (default 1).
. "$(dirname "$0")/lib.sh"
need getfattr attr
FG="python3 $(dirname "$0")/faultgen.py"
SEED=${VBFS_FAULT_SEED:-$(( $(od -An -N4 -tu4 /dev/urandom) % 1000000 ))}
SCALE=${VBFS_FAULT_SCALE:-1}
echo "# heal_fault seed $SEED (rerun: VBFS_FAULT_SEED=$SEED)"
START=$(date +%s)

TOP=$T
TOT_FAULTS=0
one_round() {
	local name=$1 shape=$2 BS=$3 NF=$4 seed=$((SEED * 10 + $5))
	local T=$TOP/$1 S R P IDX nfaults
	mkdir -p "$T"; S=$T/store R=$T/replica P=$T/parity IDX=$T/idx
	$FG make "$S" "$seed" "$shape" >/dev/null || { fail "$name: make store"; return; }
	cp -a "$S" "$T/pristine"
	expect_status "$name: build with parity 8+2" 0 "$VBFSCTL" build "$S" "$IDX" --block-size "$BS" --parity 8+2 --parity-dir "$P"
	cp -a "$S" "$R"
	$FG inject "$S" "$T/pristine" "$((seed * 10 + 1))" "$NF" "$BS" >"$T/faults-store.json" || fail "$name: inject store"
	$FG inject "$R" "$T/pristine" "$((seed * 10 + 2))" "$NF" "$BS" >"$T/faults-replica.json" || fail "$name: inject replica"
	$FG expect "$S" "$T/pristine" "$BS" >"$T/expect-store.json"
	$FG expect "$R" "$T/pristine" "$BS" >"$T/expect-replica.json"
	nfaults=$(python3 -c 'import json,sys; print(sum(len(json.load(open(f))) for f in sys.argv[1:]))' \
	"$T/faults-store.json" "$T/faults-replica.json")
	TOT_FAULTS=$((TOT_FAULTS + nfaults))
	echo "# $name: $nfaults faults"

	# ---- replica ---------------------------------------------------------------------
	vbfs_mount "$S" "$IDX" "$T/m1" "replica=$R" || { fail "$name: mount with replica"; return; }
	$FG read "$T/m1" "$T/pristine" "$BS" "$seed" >"$T/read-replica.json" || fail "$name: read pass (replica) crashed"
	getfattr --absolute-names -n user.vbfs.stats --only-values "$T/m1" >"$T/stats-replica.json"
	vbfs_umount "$T/m1"
	expect_eq "$name: mount with replica: exit 1 (the store is damaged)" 1 "$VBFS_STATUS"
	"$VBFSCTL" verify "$S" "$IDX" --replica "$R" --json >"$T/scrub-replica.json" 2>/dev/null
	expect_eq "$name: verify --replica exit" 1 "$?"

python3 - "$T" "$(realpath "$R")" <<'EOF' >"$T/replica.check" 2>&1 && pass "$name replica: every invariant held ($(tail -n1 "$T/replica.check"))" || { fail "$name replica: invariants violated"; cat "$T/replica.check" >&2; }
import json, sys
T, R = sys.argv[1], sys.argv[2]
ld = lambda f: json.load(open(f"{T}/{f}"))
es, er, rd = ld("expect-store.json"), ld("expect-replica.json"), ld("read-replica.json")
scrub = ld("scrub-replica.json")
log = [json.loads(l) for l in open(f"{T}/m1.log") if l.strip()]
stats = ld("stats-replica.json")
bad = []
good_s = {(p, b) for p, bl in es["served"].items() for b in bl}
good_r = {(p, b) for p, bl in er["served"].items() for b in bl}
allb = set()
for p in es["served"]:
    pass
for k, v in es["events"].items():
    pass
	# every block of every pristine file: from the read pass (it read them all)
eio = {(p, b) for p, bl in rd["eio"].items() for b in bl}
ok = {(p, b) for p, bl in rd["ok"].items() for b in bl}
allb = eio | ok
want_heal = {x for x in allb if x not in good_s and x in good_r}
want_eio = {x for x in allb if x not in good_s and x not in good_r}
if rd["wrong_bytes"]: bad.append(f"wrong bytes served: {rd['wrong_bytes']}")
if rd["short"] or rd["other_errors"]: bad.append(f"short {rd['short']} other {rd['other_errors'][:3]}")
if eio != want_eio: bad.append(f"EIO {len(eio)} != wanted {len(want_eio)}: extra {sorted(eio - want_eio)[:3]} missing {sorted(want_eio - eio)[:3]}")
if eio & ok: bad.append(f"blocks both EIO and OK: {sorted(eio & ok)[:3]}")
hexp = lambda e: e.get("path_hex") or e["path"].encode().hex()
healed = [(hexp(e), e["block"]) for e in log if e["event"] == "healed"]
if set(healed) != want_heal: bad.append(f"healed events {len(set(healed))} != wanted {len(want_heal)}")
if any(e["source"] != "replica:" + R for e in log if e["event"] == "healed"): bad.append("a heal not from the replica")
	# each healed answers an earlier damage event of the same block, repairable true
seen = {}
for i, e in enumerate(log):
    if e.get("repairable") is not None and e.get("block", -1) >= 0:
        seen.setdefault((hexp(e), e["block"]), e["repairable"])
    if e["event"] == "healed" and seen.get((hexp(e), e["block"])) is not True:
        bad.append(f"healed before its damage event: {e['path']} {e['block']}")
unrep = {k for k, v in seen.items() if v is False}
if unrep != want_eio: bad.append(f"repairable=false {len(unrep)} != EIO {len(want_eio)}")
	# the scrub judged every block as the mount did
sj = {(hexp(e), e["block"]): e["repairable"] for e in scrub["events"]
      if e.get("repairable") is not None and e.get("block", -1) >= 0}
if sj != seen: bad.append(f"scrub judgements differ from the mount's: {len(set(sj.items()) ^ set(seen.items()))}")
if scrub["repairable"] != len(want_heal) or scrub["unrecoverable"] != len(want_eio):
    bad.append(f"scrub counts {scrub['repairable']}/{scrub['unrecoverable']} != {len(want_heal)}/{len(want_eio)}")
if stats["healed"] != len(want_heal) or stats["unrepairable"] != len(want_eio):
    bad.append(f"stats healed {stats['healed']} unrepairable {stats['unrepairable']}")
for b in bad: print(b)
print(f"{len(allb)} blocks, {len(want_heal)} healed, {len(want_eio)} EIO, 0 wrong bytes" if not bad else "FAILED")
sys.exit(1 if bad else 0)
EOF

	# ---- parity ------------------------------------------------------------------------
	vbfs_mount "$S" "$IDX" "$T/m2" "parity=$P" || { fail "$name: mount with parity"; return; }
	$FG read "$T/m2" "$T/pristine" "$BS" "$seed" >"$T/read-parity.json" || fail "$name: read pass (parity) crashed"
	vbfs_umount "$T/m2"
	expect_eq "$name: mount with parity: exit 1" 1 "$VBFS_STATUS"
	"$VBFSCTL" verify "$S" "$IDX" --parity "$P" --json >"$T/scrub-parity.json" 2>/dev/null
	expect_eq "$name: verify --parity exit" 1 "$?"

python3 - "$T" <<'EOF' >"$T/parity.check" 2>&1 && pass "$name parity: every invariant held ($(tail -n1 "$T/parity.check"))" || { fail "$name parity: invariants violated"; cat "$T/parity.check" >&2; }
import json, sys
T = sys.argv[1]
ld = lambda f: json.load(open(f"{T}/{f}"))
es, rd, scrub = ld("expect-store.json"), ld("read-parity.json"), ld("scrub-parity.json")
log = [json.loads(l) for l in open(f"{T}/m2.log") if l.strip()]
hexp = lambda e: e.get("path_hex") or e["path"].encode().hex()
bad = []
good_s = {(p, b) for p, bl in es["served"].items() for b in bl}
eio = {(p, b) for p, bl in rd["eio"].items() for b in bl}
ok = {(p, b) for p, bl in rd["ok"].items() for b in bl}
healed = {(hexp(e), e["block"]) for e in log if e["event"] == "healed"}
judged = {}
for e in log:
    if e.get("repairable") is not None and e.get("block", -1) >= 0:
        judged.setdefault((hexp(e), e["block"]), e["repairable"])
if rd["wrong_bytes"]: bad.append(f"wrong bytes served: {rd['wrong_bytes']}")
if eio & ok: bad.append("blocks both EIO and OK")
if (ok - good_s) != healed: bad.append(f"served-from-damage {len(ok - good_s)} != healed events {len(healed)}")
if eio & good_s: bad.append(f"EIO on a good block: {sorted(eio & good_s)[:3]}")
if {k for k, v in judged.items() if not v} != eio: bad.append("EIO blocks != repairable=false events")
if any(e["source"] != "parity" for e in log if e["event"] == "healed"): bad.append("a heal not from parity")
sj = {(hexp(e), e["block"]): e["repairable"] for e in scrub["events"]
      if e.get("repairable") is not None and e.get("block", -1) >= 0}
if sj != judged: bad.append(f"scrub judgements differ from the mount's: {len(set(sj.items()) ^ set(judged.items()))}")
open(f"{T}/parity-healed", "w").write("%d\n" % len(healed))
for b in bad: print(b)
print(f"{len(ok | eio)} blocks, {len(healed)} healed from parity, {len(eio)} EIO, 0 wrong bytes" if not bad else "FAILED")
sys.exit(1 if bad else 0)
EOF
}

one_round mixed4k mixed64k 4096 300 1
one_round small4k small4k 4096 200 2
one_round large64k large1m 65536 150 3
one_round light64k mixed64k 65536 25 4   # light damage: parity has work it can do
check "at least 1000 faults injected ($TOT_FAULTS)" test "$TOT_FAULTS" -ge $((1000 * SCALE))
PARITY_HEALED=$(cat "$TOP"/*/parity-healed 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
check "parity healed blocks at all ($PARITY_HEALED): the parity rounds prove something" test "$PARITY_HEALED" -gt 0
echo "# heal_fault seed=$SEED: $TOT_FAULTS faults, $(( $(date +%s) - START )) s"
finish
