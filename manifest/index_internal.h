/*
 * index_internal.h - the LMDB layout, shared by index.c (read side),
 * build.c (write side) and trust.c (root digest).  Not for fs/ or tools/.
 *
 * One LMDB environment per index directory (data.mdb, lock.mdb), four
 * named databases:
 *   meta     ASCII key -> value (integers as 8-byte little-endian)
 *   inodes   id (8 bytes big-endian)                 -> tree record (record.c)
 *   dirents  parent id (8 BE) + child name bytes     -> child id (8 BE)
 *   blocks   file id (8 BE) + run (8 BE)             -> up to VBFS_RUN_BLOCKS
 *            SHA-256 digests of blocks run*511 ... run*511+510
 *            file id + (run | IDX_HOLE_RUN)         -> 64-byte bitmap: bit i set
 *            when block run*511+i was a hole (sparse files only; a run
 *            without holes has no bitmap)
 * Big-endian keys make LMDB's byte order equal numeric order, so a cursor
 * walks a directory's children, or a file's digest runs, in order.
 */
#ifndef VBFS_INDEX_INTERNAL_H
#define VBFS_INDEX_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include "vbfs.h"

#define IDX_MAPSIZE      ((size_t)1 << 40)   /* virtual only: 1 TiB of address space */
#define IDX_META_ROOT    "root"
#define IDX_META_SIG     "signature"
#define IDX_HOLE_RUN     (1ull << 63)        /* run-key bit: a hole bitmap */
#define IDX_HOLE_MAP     64u                 /* bytes per hole bitmap (511 bits used) */

struct idx_dbs {
	MDB_dbi meta, inodes, dirents, blocks;
};

/*
 * An opened index serves ONE snapshot: a private, unlinked copy of one read
 * transaction of the index (snapshot.c), whose root digest (and signature)
 * was verified at open.  Nothing done to the index directory afterwards --
 * a `vbfsctl build` committing, or a digest overwritten in place -- changes
 * what a mount or a scrub sees (remount or rerun to see a new build), so
 * sizes, digests and cached blocks can never come from two different
 * builds, nor from bytes that were not checked.  LMDB allows a read txn
 * opened with MDB_NOTLS to be used by any thread, one at a time:
 * `snap_lock` serialises the lookups (microseconds; hashing happens
 * outside it).
 */
struct vbfs_index {
	MDB_env *env;               /* the private copy, read-only */
	struct idx_dbs db;
	struct vbfs_meta meta;
	char *path;
	MDB_txn *snap;              /* the verified snapshot */
	pthread_mutex_t snap_lock;  /* held by a vbfs_txn between begin/renew and reset/end */
	bool snap_lock_ready;
};

struct vbfs_txn {
	vbfs_index *idx;
	MDB_txn *txn;               /* == idx->snap */
	bool locked;
};

static inline void idx_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static inline uint64_t idx_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = v << 8 | p[i];
	return v;
}

/* Refuse a data.mdb shorter than its own meta page says (SIGBUS otherwise). */
vbfs_err idx_check_size(MDB_env *env, const char *dir, char why[VBFS_WHY_LEN]);
/* Open the index in `dir` itself read-only (MDB_NOLOCK on read-only media). */
vbfs_err idx_env_open_readonly(const char *dir, MDB_env **out, char why[VBFS_WHY_LEN]);

/* snapshot.c: copy one snapshot of the index in `dir` to a private unlinked
 * file under idx_tmpdir(), walk it once in a forked probe (a malformed page
 * kills the probe, not the caller) computing its root digest into `root`,
 * and open the copy read-only into *out. */
vbfs_err idx_snapshot_open(const char *dir, MDB_env **out, uint8_t root[VBFS_DIGEST_LEN],
			   char why[VBFS_WHY_LEN]);
/* Walk the index in `dir` in place in a forked probe, as idx_snapshot_open
 * does its copy: an error only when reading it would crash (for a build,
 * before it opens the old index for writing).  No data.mdb: VBFS_OK. */
vbfs_err idx_probe_in_place(const char *dir, char why[VBFS_WHY_LEN]);
/* Open a copy made by idx_snapshot_open (data_size bytes, then zero tail). */
vbfs_err idx_open_copy_env(const char *path, uint64_t data_size, MDB_env **out,
			   char why[VBFS_WHY_LEN]);
const char *idx_tmpdir(void);     /* $TMPDIR, or /tmp */
vbfs_err idx_lmdb_err(int rc, const char *what, char why[VBFS_WHY_LEN]);
/* Open (and with `create`, create) the four databases in txn. */
vbfs_err idx_open_dbs(MDB_txn *txn, bool create, struct idx_dbs *db,
		      char why[VBFS_WHY_LEN]);
vbfs_err idx_read_meta(MDB_txn *txn, const struct idx_dbs *db, struct vbfs_meta *m,
		       char why[VBFS_WHY_LEN]);

/* trust.c: the root digest over meta (less root and signature), inodes,
 * dirents and blocks, in key order; and the Ed25519 signature over it. */
vbfs_err idx_root_digest(MDB_txn *txn, const struct idx_dbs *db, bool parallel,
			 uint8_t out[VBFS_DIGEST_LEN], char why[VBFS_WHY_LEN]);
vbfs_err idx_sign(const char *secret_key_path, const uint8_t root[VBFS_DIGEST_LEN],
		  uint8_t sig[64], char why[VBFS_WHY_LEN]);
vbfs_err idx_check_secret_key(const char *secret_key_path, char why[VBFS_WHY_LEN]);
/* Whether `sig` is the signature of `root` by the Ed25519 secret key at
 * `secret_key_path` (checked with its public half): a build that signs
 * lends digests only from an index its own key signed. */
vbfs_err idx_signed_by_secret(const char *secret_key_path, const uint8_t root[VBFS_DIGEST_LEN],
			     const uint8_t sig[64], char why[VBFS_WHY_LEN]);
vbfs_err idx_verify_signature(const char *public_key_path,
			      const uint8_t root[VBFS_DIGEST_LEN],
			      const uint8_t sig[64], char why[VBFS_WHY_LEN]);

/* trust.c: Ed25519 over `tag` || digest, for other signed documents (verify
 * reports): the tag keeps one kind of signature from passing for another. */
vbfs_err trust_sign_digest(const char *secret_key_path, const char *tag,
			   const uint8_t digest[VBFS_DIGEST_LEN], uint8_t sig[64],
			   char why[VBFS_WHY_LEN]);
vbfs_err trust_verify_digest(const char *public_key_path, const char *tag,
			     const uint8_t digest[VBFS_DIGEST_LEN], const uint8_t sig[64],
			     char why[VBFS_WHY_LEN]);

#endif
