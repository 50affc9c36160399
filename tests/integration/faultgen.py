#!/usr/bin/env python3
"""faultgen.py - the fault injector and the oracle behind fault_random.sh.

Subcommands (all paths are handled as bytes: store names may hold newlines
and invalid UTF-8):

  make STORE SEED SHAPE        build a store of SHAPE (small4k, mixed64k,
                               large1m, nested64k) from SEED, deterministic
  inject STORE PRISTINE SEED N BS [--inplace]
                               inject about N faults into STORE (PRISTINE is
                               the untouched copy); prints a JSON list of
                               faults.  --inplace: only faults that keep every
                               file a regular file of the same size
  expect STORE PRISTINE BS [--unreadable]
                               the oracle: from the damaged STORE and
                               PRISTINE, the exact set of events the mount and
                               the scrub must report (JSON on stdout).
                               --unreadable: STORE is read through an inner
                               vbfs, so every damaged block is `unreadable`
  read MNT PRISTINE BS SEED    read every block of every file through the
                               mount, in random order, twice; compare with
                               PRISTINE; JSON result on stdout
  check EXPECT READ LOG SCRUB BS PRISTINE STORE
                               compare; print totals; exit 1 on any violation

The oracle does not trust the fault list: it compares the damaged store with
the pristine copy byte by byte, block by block, so a fault that happens to
cancel another (two flips of one bit) is judged by what the store holds.
"""
import errno
import hashlib
import json
import os
import random
import stat
import sys

SECTOR = 512


def data(seed, tag, n):
    """n deterministic pseudo-random bytes (shake-128: ~200 MB/s)."""
    return hashlib.shake_128(b"%d:%s" % (seed, tag)).digest(n) if n else b""


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


# ---- stores ------------------------------------------------------------------

ODD_NAMES = [b"with space.bin", b"new\nline.bin", b"bad\xffutf8.bin",
             b"\xc3\xa9t\xc3\xa9.bin", b"tab\there.bin", b"esc\x1b[31m.bin",
             b"n" * 200 + b".bin"]


def make(store, seed, shape):
    store = os.fsencode(store)
    r = random.Random(seed)
    # (number of small files, max small size, large files (min, max MiB))
    shapes = {
        "small4k": (260, 20000, 3, (2, 3)),
        "mixed64k": (140, 300000, 4, (1, 4)),
        "large1m": (50, 2 << 20, 4, (3, 8)),
        "nested64k": (40, 200000, 1, (2, 2)),
        "load64k": (60, 200000, 6, (2, 6)),   # plain names: randread lists them
    }
    nsmall, maxsmall, nlarge, (lo, hi) = shapes[shape]
    plain = shape.startswith("load")
    dirs = [b"", b"a", b"a/b", b"a/b/c", b"d"] + ([] if plain else [b"e\nf"])
    n = 0
    for i in range(nsmall):
        d = r.choice(dirs)
        name = ODD_NAMES[i] if i < len(ODD_NAMES) and not plain else b"f%04d.dat" % i
        size = r.choice([1, r.randint(1, 600), r.randint(1, maxsmall), r.randint(1, maxsmall)])
        write(os.path.join(store, d, name), data(seed, b"s%d" % i, size))
        n += 1
    for i in range(nlarge):
        size = r.randint(lo << 20, hi << 20) + r.choice([0, 1, 4095, 513])
        write(os.path.join(store, b"big", b"L%02d.img" % i), data(seed, b"L%d" % i, size))
        n += 1
    for i in range(3):   # empty files: indexed, never faulted
        write(os.path.join(store, b"empty%d" % i), b"")
    os.symlink(b"big", os.path.join(store, b"link-to-big"))
    print(n)


def regular_files(root):
    """Relative paths (bytes) of the regular files under root, sorted."""
    root = os.fsencode(root)
    out = []
    for d, dn, fn in os.walk(root):
        dn.sort()
        for f in fn:
            p = os.path.join(d, f)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out.append(os.path.relpath(p, root))
    return sorted(out)


# ---- faults ------------------------------------------------------------------

def nblocks(size, bs):
    return (size + bs - 1) // bs


def block_len(size, bs, b):
    return max(0, min(bs, size - b * bs))


class Injector:
    def __init__(self, store, pristine, seed, bs, inplace):
        self.store = os.fsencode(store)
        self.pristine = os.fsencode(pristine)
        self.r = random.Random(seed * 7919 + 17)
        self.seed = seed
        self.bs = bs
        self.inplace = inplace
        self.files = [f for f in regular_files(pristine)
                      if os.path.getsize(os.path.join(self.pristine, f)) > 0]
        self.finished = set()      # replaced/removed: no more faults on them
        self.faults = []

    def sp(self, rel):
        return os.path.join(self.store, rel)

    def size(self, rel):
        return os.path.getsize(self.sp(rel))

    def note(self, kind, rel, **kw):
        kw.update(kind=kind, path=os.fsdecode(rel))
        self.faults.append(kw)

    def patch(self, rel, off, content):
        fd = os.open(self.sp(rel), os.O_WRONLY)
        try:
            os.pwrite(fd, content, off)
        finally:
            os.close(fd)

    # block-level faults: the file stays a file of its size
    def bitflip(self, rel):
        size = self.size(rel)
        off = self.r.randrange(size)
        fd = os.open(self.sp(rel), os.O_RDWR)
        b = os.pread(fd, 1, off)[0] ^ (1 << self.r.randrange(8))
        os.pwrite(fd, bytes([b]), off)
        os.close(fd)
        self.note("bitflip", rel, offset=off)

    def zero_sector(self, rel):
        size = self.size(rel)
        off = self.r.randrange(max(1, size // SECTOR)) * SECTOR
        n = min(SECTOR, size - off)
        self.patch(rel, off, b"\0" * n)
        self.note("zero-sector", rel, offset=off, length=n)

    def swap_blocks(self, rel):
        size = self.size(rel)
        full = size // self.bs
        if full < 2:
            return self.bitflip(rel)
        i, j = self.r.sample(range(full), 2)
        fd = os.open(self.sp(rel), os.O_RDWR)
        a = os.pread(fd, self.bs, i * self.bs)
        b = os.pread(fd, self.bs, j * self.bs)
        os.pwrite(fd, b, i * self.bs)
        os.pwrite(fd, a, j * self.bs)
        os.close(fd)
        self.note("swap-blocks", rel, blocks=[i, j])

    def same_size(self, rel):
        size = self.size(rel)
        # rename over: a new inode, as a restore tool or an attacker would
        tmp = self.sp(rel) + b".tmp~"
        write(tmp, data(self.seed, b"replace" + rel, size))
        os.rename(tmp, self.sp(rel))
        self.finished.add(rel)
        self.note("same-size-replace", rel)

    # file-level faults
    def truncate(self, rel):
        size = self.size(rel)
        nb = nblocks(size, self.bs)
        how = self.r.choice(["boundary", "mid", "zero"])
        if how == "boundary" and nb > 1:
            new = self.r.randrange(1, nb) * self.bs
        elif how == "zero" or size < 2:
            new = 0
        else:
            new = self.r.randrange(1, size)
        os.truncate(self.sp(rel), new)
        self.finished.add(rel)
        self.note("truncate-" + how, rel, size=new)

    def append(self, rel):
        with open(self.sp(rel), "ab") as f:
            f.write(data(self.seed, b"grow" + rel, self.r.randint(1, 3 * self.bs)))
        self.finished.add(rel)
        self.note("grow", rel)

    def delete(self, rel):
        os.unlink(self.sp(rel))
        self.finished.add(rel)
        self.note("delete", rel)

    def to_dir(self, rel):
        os.unlink(self.sp(rel))
        os.mkdir(self.sp(rel))
        self.finished.add(rel)
        self.note("to-directory", rel)

    def to_symlink(self, rel):
        # pointing at the pristine copy: the daemon must not follow it
        target = os.path.join(self.pristine, rel)
        os.unlink(self.sp(rel))
        os.symlink(target, self.sp(rel))
        self.finished.add(rel)
        self.note("to-symlink", rel)

    def to_fifo(self, rel):
        os.unlink(self.sp(rel))
        os.mkfifo(self.sp(rel))
        self.finished.add(rel)
        self.note("to-fifo", rel)

    def swap_files(self, rel):
        others = [f for f in self.files if f not in self.finished and f != rel]
        if not others:
            return self.bitflip(rel)
        other = self.r.choice(others)
        a, b = self.sp(rel), self.sp(other)
        tmp = a + b".swap~"
        os.rename(a, tmp)
        os.rename(b, a)
        os.rename(tmp, b)
        self.finished.update([rel, other])
        self.note("swap-files", rel, other=os.fsdecode(other))

    def run(self, n):
        block_faults = [self.bitflip, self.bitflip, self.zero_sector, self.swap_blocks]
        file_faults = [self.same_size, self.truncate, self.truncate, self.delete,
                       self.to_dir, self.to_symlink, self.to_fifo, self.swap_files,
                       self.append]
        if self.inplace:
            file_faults = [self.same_size, self.swap_blocks]
        for _ in range(n):
            live = [f for f in self.files if f not in self.finished]
            if not live:
                break
            rel = self.r.choice(live)
            fault = self.r.choice(block_faults if self.r.random() < 0.6 else file_faults)
            fault(rel)
        json.dump(self.faults, sys.stdout)
        print()


# ---- the oracle -----------------------------------------------------------------

def key_of(path, block, kind):
    return "%s\x00%d\x00%s" % (path.hex(), block, kind)


def expect(store, pristine, bs, unreadable):
    store, pristine = os.fsencode(store), os.fsencode(pristine)
    events = {}        # key -> {path, block, kind, expected digest, actual}
    served = {}        # path hex -> list of blocks that must read fine

    def add(path, block, kind, **kw):
        kw.update(path=path.hex(), block=block, kind=kind)
        events[key_of(path, block, kind)] = kw

    for rel in regular_files(pristine):
        with open(os.path.join(pristine, rel), "rb") as f:
            orig = f.read()
        nb = nblocks(len(orig), bs)
        sp = os.path.join(store, rel)
        try:
            st = os.lstat(sp)
        except OSError as e:
            st = None
            err = e.errno
        if st is None or not stat.S_ISREG(st.st_mode):
            if unreadable:     # the inner vbfs still shows an indexed file: EIO
                for b in range(nb):
                    add(rel, b, "unreadable")
            else:
                kind = "missing" if st is None and err == errno.ENOENT else "changed"
                add(rel, -1, kind, empty=len(orig) == 0)
            served[rel.hex()] = []
            continue
        with open(sp, "rb") as f:
            cur = f.read()
        if len(cur) > len(orig) and not unreadable:
            add(rel, -1, "changed", empty=len(orig) == 0)
        ok = []
        for b in range(nb):
            n = block_len(len(orig), bs, b)
            want = orig[b * bs:b * bs + n]
            got = cur[b * bs:b * bs + n]
            exp = hashlib.sha256(want).hexdigest()
            if unreadable and got != want:
                add(rel, b, "unreadable", expected=exp)
            elif len(got) < n:
                add(rel, b, "missing", expected=exp)
            elif got != want:
                add(rel, b, "corrupt", expected=exp, actual=hashlib.sha256(got).hexdigest())
            else:
                ok.append(b)
        served[rel.hex()] = ok
    json.dump({"events": events, "served": served}, sys.stdout)


# ---- reading through the mount ------------------------------------------------------

def read_all(mnt, pristine, bs, seed):
    mnt, pristine = os.fsencode(mnt), os.fsencode(pristine)
    r = random.Random(seed)
    jobs = []
    origs = {}
    for rel in regular_files(pristine):
        with open(os.path.join(pristine, rel), "rb") as f:
            origs[rel] = f.read()
        for b in range(nblocks(len(origs[rel]), bs)):
            jobs.append((rel, b))
    res = {"reads": 0, "bytes": 0, "wrong_bytes": 0, "short": 0, "other_errors": [],
           "eio": {}, "ok": {}}
    for rnd in range(2):     # the second pass: cached verdicts and pages
        r.shuffle(jobs)
        fds = {}
        for rel, b in jobs:
            if rel not in fds:
                fds[rel] = os.open(os.path.join(mnt, rel), os.O_RDONLY)
            orig = origs[rel]
            n = block_len(len(orig), bs, b)
            res["reads"] += 1
            try:
                got = os.pread(fds[rel], n, b * bs)
            except OSError as e:
                if e.errno == errno.EIO:
                    res["eio"].setdefault(rel.hex(), set()).add(b)
                else:
                    res["other_errors"].append([rel.hex(), b, e.errno])
                continue
            want = orig[b * bs:b * bs + n]
            res["bytes"] += len(got)
            if len(got) != n:
                res["short"] += 1
            res["wrong_bytes"] += sum(1 for x, y in zip(got, want) if x != y)
            res["ok"].setdefault(rel.hex(), set()).add(b)
        for fd in fds.values():
            os.close(fd)
    for k in ("eio", "ok"):
        res[k] = {p: sorted(s) for p, s in res[k].items()}
    json.dump(res, sys.stdout)


# ---- comparison ------------------------------------------------------------------------

def event_path(ev):
    if "path_hex" in ev:
        return bytes.fromhex(ev["path_hex"])
    return ev["path"].encode("utf-8")


def load_events(text):
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def check(expect_f, read_f, log_f, scrub_f, bs, pristine, store):
    with open(expect_f) as f:
        exp = json.load(f)
    with open(read_f) as f:
        rd = json.load(f)
    with open(log_f) as f:
        mount_events = load_events(f.read())
    with open(scrub_f) as f:
        scrub = json.load(f)
    bs = int(bs)
    problems = []
    expected = exp["events"]
    # the mount cannot see a file-level event of an empty file: nobody reads it
    exp_mount = {k for k, v in expected.items() if not v.get("empty")}
    exp_scrub = set(expected)

    def judge(name, events, want):
        got = {}
        for ev in events:
            if ev["event"] == "transient":
                problems.append("%s: unexpected transient event %s" % (name, json.dumps(ev)))
                continue
            p = event_path(ev)
            k = key_of(p, ev.get("block", -1), ev["event"])
            if k in got:
                problems.append("%s: duplicate event %s" % (name, json.dumps(ev)))
            got[k] = ev
            e = expected.get(k)
            if e is None:
                continue
            if "block" in ev:
                if ev["offset"] != ev["block"] * bs:
                    problems.append("%s: wrong offset %s" % (name, json.dumps(ev)))
                if "expected" in e and ev.get("expected") != e["expected"]:
                    problems.append("%s: wrong expected digest %s" % (name, json.dumps(ev)))
                if "actual" in e and ev.get("actual") != e["actual"]:
                    problems.append("%s: wrong actual digest %s" % (name, json.dumps(ev)))
        missed = sorted(want - set(got))
        false = sorted(set(got) - want)
        for k in missed:
            e = dict(expected[k], path=bytes.fromhex(expected[k]["path"]))
            problems.append("%s: MISSED %r" % (name, e))
        for k in false:
            problems.append("%s: FALSE ALARM %s" % (name, json.dumps(got[k])))
        return len(missed), len(false), len(got)

    m_missed, m_false, m_n = judge("mount log", mount_events, exp_mount)
    s_missed, s_false, s_n = judge("scrub", scrub["events"], exp_scrub)

    # reads: EIO exactly on the blocks that are not served
    eio_missed = eio_false = 0
    for ph, ok_blocks in exp["served"].items():
        want_ok = set(ok_blocks)
        got_eio = set(rd["eio"].get(ph, []))
        got_ok = set(rd["ok"].get(ph, []))
        rel = bytes.fromhex(ph)
        bad_ok = got_ok - want_ok
        bad_eio = got_eio & want_ok
        if bad_ok:
            eio_missed += len(bad_ok)
            problems.append("read: %r blocks %s were served but are damaged" % (rel, sorted(bad_ok)[:10]))
        if bad_eio:
            eio_false += len(bad_eio)
            problems.append("read: %r blocks %s failed with EIO but are intact" % (rel, sorted(bad_eio)[:10]))
    if rd["wrong_bytes"]:
        problems.append("read: %d WRONG BYTES returned" % rd["wrong_bytes"])
    if rd["short"]:
        problems.append("read: %d short reads" % rd["short"])
    for e in rd["other_errors"][:10]:
        problems.append("read: unexpected errno %s" % e)
    damaged_blocks = sum(1 for v in expected.values() if v["block"] >= 0)
    totals = {
        "blocks_read": rd["reads"], "bytes_read": rd["bytes"],
        "wrong_bytes": rd["wrong_bytes"], "short_reads": rd["short"],
        "expected_events": len(expected), "damaged_blocks": damaged_blocks,
        "mount_events": m_n, "scrub_events": s_n,
        "missed": m_missed + s_missed + eio_missed,
        "false_alarms": m_false + s_false + eio_false,
    }
    print(json.dumps(totals))
    for p in problems[:40]:
        print("PROBLEM: " + p, file=sys.stderr)
    if len(problems) > 40:
        print("PROBLEM: ... and %d more" % (len(problems) - 40), file=sys.stderr)
    return 1 if problems else 0


def main(argv):
    cmd = argv[1]
    if cmd == "make":
        make(argv[2], int(argv[3]), argv[4])
    elif cmd == "inject":
        Injector(argv[2], argv[3], int(argv[4]), int(argv[6]), "--inplace" in argv).run(int(argv[5]))
    elif cmd == "expect":
        expect(argv[2], argv[3], int(argv[4]), "--unreadable" in argv)
    elif cmd == "damage":      # EXPECT -> "path<TAB>block" lines for randread
        with open(argv[2]) as f:
            for v in json.load(f)["events"].values():
                if v["block"] >= 0:
                    print("%s\t%d" % (bytes.fromhex(v["path"]).decode(), v["block"]))
    elif cmd == "list":        # PRISTINE -> one regular file per line
        for rel in regular_files(argv[2]):
            print(rel.decode())
    elif cmd == "read":
        read_all(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif cmd == "check":
        return check(*argv[2:9])
    else:
        print("faultgen.py: unknown command %s" % cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
