#!/usr/bin/env python3
"""mkdata.py - the data sets of scripts/bench's tree sections, made once.

  mkdata.py tree DIR N MIB      N files of MIB MiB each (a restic pack tree)
  mkdata.py small DIR N MINK MAXK
                                N files, sizes log-uniform MINK..MAXK KiB, in
                                N/500 directories of two levels (an /etc or
                                mail backup)

Contents are deterministic pseudo-random bytes (incompressible), so a rerun
makes the same tree.  Writes DIR.done last: a half-made tree is remade.
"""
import math
import os
import random
import shutil
import sys


def tree(root, n, mib):
    rng = random.Random(14)
    for i in range(n):
        with open(os.path.join(root, "pack%03d" % i), "wb") as f:
            for _ in range(mib):
                f.write(rng.randbytes(1 << 20))


def small(root, n, mink, maxk):
    rng = random.Random(1464)
    ndirs = max(1, n // 500)
    lo, hi = math.log(mink * 1024), math.log(maxk * 1024)
    for i in range(n):
        d = os.path.join(root, "d%03d" % (i % ndirs // 10), "s%d" % (i % ndirs % 10))
        if i < ndirs:
            os.makedirs(d, exist_ok=True)
        size = int(math.exp(lo + rng.random() * (hi - lo)))
        with open(os.path.join(d, "f%06d" % i), "wb") as f:
            f.write(rng.randbytes(size))


def main():
    kind, root = sys.argv[1], sys.argv[2]
    args = [int(a) for a in sys.argv[3:]]
    if os.path.exists(root + ".done"):
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    {"tree": tree, "small": small}[kind](root, *args)
    open(root + ".done", "w").close()


if __name__ == "__main__":
    main()
