#!/usr/bin/env python3
"""craft_mdb.py - damage an LMDB data.mdb the way a crafted file would.

    craft_mdb.py DATA.MDB ACTION

Edits LMDB's own page and node headers in place (not vbfs's values:
tests/unit/test_tamper does those through LMDB).  LMDB 0.9 layout on a
64-bit little-endian host: a page starts with pgno (8), pad (2), flags (2),
lower (2), upper (2); then lower-16 bytes of 2-byte node offsets.  A node is
lo (2), hi (2), flags (2), ksize (2), key, data; a leaf's data size is
lo | hi << 16, a branch's child page number is lo | hi << 16 | flags << 32.

ACTION:
  ksize     the first node of the last leaf page gets key size 0x7fff
  dsize     the first node of the last leaf page gets data size 0x7fffffff
  lower     the last leaf page's `lower` drops below the header (16)
  branch    the first branch page's first child points at page 0xffffffff
  garbage   every page after the two meta pages is random (seed 15)
  truncate  the file is cut to three pages
  random=N  1 to 8 random bytes changed after the meta pages, most in page
            and node headers (seed N)
Exit 0 when the change was made, 2 when the file has no such page.
"""
import random
import struct
import sys

PAGE = 4096
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08


def pages(data):
    """(pgno, flags) of every page header that is not inside an overflow run."""
    out, pg = [], 2
    while (pg + 1) * PAGE <= len(data):
        off = pg * PAGE
        pgno, _pad, flags = struct.unpack_from("<QHH", data, off)
        out.append((pg, flags))
        if flags & P_OVERFLOW and pgno == pg:
            pg += max(1, struct.unpack_from("<I", data, off + 12)[0])
        else:
            pg += 1
    return out


def first_node(data, pg):
    off = pg * PAGE
    lower = struct.unpack_from("<H", data, off + 12)[0]
    if lower <= 16:
        return None
    return off + struct.unpack_from("<H", data, off + 16)[0]


def main():
    path, action = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        data = bytearray(f.read())
    live = [(pg, fl) for pg, fl in pages(data) if struct.unpack_from("<Q", data, pg * PAGE)[0] == pg]
    leaves = [pg for pg, fl in live if fl & (P_LEAF | P_BRANCH | P_OVERFLOW | P_META) == P_LEAF]
    branches = [pg for pg, fl in live if fl & (P_LEAF | P_BRANCH | P_OVERFLOW | P_META) == P_BRANCH]
    if action == "truncate":
        del data[3 * PAGE:]
    elif action.startswith("random="):
        rnd = random.Random(int(action[len("random="):]))
        npages = len(data) // PAGE
        if npages < 3:
            return 2
        for _ in range(rnd.randint(1, 8)):
            pg = rnd.randrange(2, npages)
            off = pg * PAGE + (rnd.randrange(0, 64) if rnd.random() < 0.6 else rnd.randrange(0, PAGE))
            if rnd.random() < 0.5:
                data[off] = rnd.randrange(256)
            else:
                data[off] ^= 1 << rnd.randrange(8)
    elif action == "garbage":
        rnd = random.Random(15)
        for i in range(2 * PAGE, len(data)):
            data[i] = rnd.randrange(256)
    elif action in ("ksize", "dsize", "lower"):
        if not leaves:
            return 2
        pg = leaves[-1]
        node = first_node(data, pg)
        if node is None:
            return 2
        if action == "ksize":
            struct.pack_into("<H", data, node + 6, 0x7FFF)
        elif action == "dsize":
            struct.pack_into("<HH", data, node, 0xFFFF, 0x7FFF)
        else:
            struct.pack_into("<H", data, pg * PAGE + 12, 4)
    elif action == "branch":
        if not branches:
            return 2
        node = first_node(data, branches[0])
        if node is None:
            return 2
        struct.pack_into("<HHH", data, node, 0xFFFF, 0xFFFF, 0)
    else:
        print("craft_mdb.py: unknown action " + action, file=sys.stderr)
        return 2
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
