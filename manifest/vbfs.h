/*
 * vbfs.h - libvbfs, the FUSE-free core of vbfs.
 *
 * It owns the truth about a backup store: the index format (LMDB), building
 * the index, and the one function that judges a block of bytes,
 * vbfs_block_verify().  The mount (fs/) and the tools (tools/) both call it,
 * so they can never disagree about a block.
 *
 * Errors: functions return a vbfs_err; vbfs_strerror() explains it.  Where an
 * error has more to say (which file, which LMDB call) the function fills a
 * caller-provided `char why[VBFS_WHY_LEN]` with one line.  errno appears only
 * at the edges (FUSE replies, tool messages).
 */
#ifndef VBFS_H
#define VBFS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#define VBFS_VERSION        "0.1.0"
#define VBFS_FORMAT_VERSION 2u          /* on-disk index format (1 is still read) */
#define VBFS_DIGEST_LEN     32u         /* SHA-256 */
#define VBFS_HEX_LEN        (2 * VBFS_DIGEST_LEN + 1)
#define VBFS_BLOCK_MIN      (4u << 10)
#define VBFS_BLOCK_MAX      (64u << 20)
#define VBFS_BLOCK_DEFAULT  (1u << 20)
#define VBFS_ROOT_ID        1u          /* == FUSE_ROOT_ID */
/* Block digests per LMDB value: 511 x 32 bytes + LMDB's 16-byte page header
 * fill four 4 KiB overflow pages exactly (256 would waste a third). */
#define VBFS_RUN_BLOCKS     511u
#define VBFS_WHY_LEN        512

/* Exit statuses shared by every program (doc/interface.md "Exit statuses"). */
enum vbfs_exit {
	VBFS_EXIT_OK = 0,       /* everything verified */
	VBFS_EXIT_DAMAGE = 1,   /* damage or a failed drill found */
	VBFS_EXIT_USAGE = 2,    /* usage or operational error */
};

typedef enum vbfs_err {
	VBFS_OK = 0,
	VBFS_ERR_IO,            /* a system call failed; errno in `why` */
	VBFS_ERR_NOMEM,
	VBFS_ERR_NOTFOUND,      /* no such entry / key */
	VBFS_ERR_NOTINDEX,      /* the directory is not a vbfs index */
	VBFS_ERR_FORMAT,        /* a record or value fails to decode */
	VBFS_ERR_VERSION,       /* index written by a newer format */
	VBFS_ERR_LMDB,          /* LMDB said no; mdb_strerror() in `why` */
	VBFS_ERR_ROOT,          /* root digest mismatch: index damaged */
	VBFS_ERR_SIGNATURE,     /* missing, wrong or bad signature */
	VBFS_ERR_USAGE,         /* bad argument */
	VBFS_ERR_INTERRUPTED,   /* stopped by a signal; nothing written */
	VBFS_ERR_STORE_MISMATCH,/* the index was built from another store */
	VBFS_ERR_EXPECT,        /* not the index asked for: backup id or age */
} vbfs_err;

const char *vbfs_strerror(vbfs_err err);

/* ---- entries: the tree as the index recorded it ------------------------ */

enum vbfs_type {
	VBFS_T_REG = 1, VBFS_T_DIR, VBFS_T_LNK, VBFS_T_FIFO, VBFS_T_CHR,
	VBFS_T_BLK, VBFS_T_SOCK,
};

enum vbfs_entry_flags {
	VBFS_F_FILE_DIGEST = 1u << 0,   /* file_digest holds the whole-file SHA-256 */
	VBFS_F_DAMAGED     = 1u << 1,   /* a backup-time manifest disagreed: never serve */
	VBFS_F_UNREADABLE  = 1u << 2,   /* could not be read at build time: no digests;
					 * on a directory: its content is unknown */
	VBFS_F_HOLES       = 1u << 3,   /* some blocks were holes in the store: hole maps stored */
	VBFS_F_CHANGED     = 1u << 4,   /* with UNREADABLE: the file kept changing while
					 * it was hashed, so no digests were recorded */
};

/*
 * One tree entry.  `path` (relative to the store root, "" for the root) and
 * `target` point into memory owned by whoever filled the struct: for
 * vbfs_txn_get*(), the LMDB map, valid until the transaction ends.
 */
struct vbfs_entry {
	uint64_t id;            /* stable across incremental builds; root = 1 */
	uint64_t parent;
	uint32_t type;          /* enum vbfs_type */
	uint32_t mode;          /* full st_mode */
	uint32_t uid, gid;
	uint32_t flags;         /* enum vbfs_entry_flags */
	uint32_t nlink;
	uint64_t size;
	int64_t  mtime_sec;
	uint32_t mtime_nsec;
	uint64_t rdev;
	uint64_t store_ino;     /* st_ino at build time: incremental reuse */
	int64_t  store_ctime_sec;
	uint32_t store_ctime_nsec;
	uint8_t  file_digest[VBFS_DIGEST_LEN];
	/* Hard links: the entries of one store inode share one set of digests,
	 * held by the first of them (in path order); the others name it here.
	 * 0: this entry holds its own.  The mount shows one st_ino for all of
	 * them: see vbfs_entry_st_ino(). */
	uint64_t link;
	uint64_t alloc_blocks;  /* st_blocks at build (512-byte units): holes show */
	uint64_t store_dev;     /* st_dev at build: with store_ino, the link identity */
	const char *path;   size_t path_len;
	const char *target; size_t target_len;  /* symlink target */
};

/* Number of blocks of a regular file of `size` bytes. */
static inline uint64_t vbfs_nblocks(uint64_t size, uint32_t block_size)
{
	return (size + block_size - 1) / block_size;
}

/* Length of block `block` of a file of `size` bytes (the last may be short). */
static inline uint32_t vbfs_block_len(uint64_t size, uint32_t block_size,
				      uint64_t block)
{
	uint64_t off = block * block_size;
	uint64_t left = size > off ? size - off : 0;
	return (uint32_t)(left < block_size ? left : block_size);
}

const char *vbfs_entry_name(const struct vbfs_entry *e, size_t *len);

/* The id whose digests (and hole map) describe this entry's bytes: the
 * link holder for a hard link, else the entry itself. */
static inline uint64_t vbfs_entry_data_id(const struct vbfs_entry *e)
{
	return e->link ? e->link : e->id;
}

/* record.c: the on-disk encoding (little-endian, versioned).  The decoder
 * accepts any bytes and never reads outside them (fuzzed). */
size_t   vbfs_record_size(const struct vbfs_entry *e);
void     vbfs_record_encode(const struct vbfs_entry *e, uint8_t *out);
vbfs_err vbfs_record_decode(const void *rec, size_t len, struct vbfs_entry *e);

/* ---- the index ---------------------------------------------------------- */

struct vbfs_meta {
	uint32_t format_version;
	uint32_t block_size;
	char     hash[16];              /* "sha256" */
	char     backup_id[256];
	int64_t  created, updated;      /* Unix seconds */
	uint64_t entries, files, blocks, bytes;
	uint64_t next_id;
	/* 1: every entry was on one device (one st_dev) with a non-zero
	 * st_ino when built, so the recorded store_ino numbers are unique per
	 * store inode.  0: several devices (a mount point inside the store),
	 * or an index written before this was recorded. */
	uint64_t store_inodes;
	uint8_t  root_digest[VBFS_DIGEST_LEN];
	bool     signed_;               /* a signature is stored */
	uint8_t  signature[64];
};

/*
 * The inode number the mount shows for `e` (st_ino, readdir's d_ino): the
 * store's own, as recorded at build, when the index says those are unique
 * (meta->store_inodes), so `ls -i`, `stat` and `find -samefile` through the
 * mount agree with the store.  Otherwise (several devices in the store, or
 * an older index) the index id of the inode's digest holder: unique per
 * store inode within the index, shared by its hard links.  Never a mix of
 * the two, which could collide.
 */
static inline uint64_t vbfs_entry_st_ino(const struct vbfs_meta *m, const struct vbfs_entry *e)
{
	return m->store_inodes == 1 ? e->store_ino : vbfs_entry_data_id(e);
}

typedef struct vbfs_index vbfs_index;
typedef struct vbfs_txn vbfs_txn;

/*
 * Open an existing index read-only.  Takes a private copy of one snapshot
 * of it (an unlinked file under $TMPDIR, about the index's live size),
 * checks the format version and the root digest of the copy; with
 * `verify_key` (a PEM Ed25519 public key file) also the signature.  The
 * handle then serves that verified copy for its whole life: a build
 * committing meanwhile, or anyone rewriting data.mdb in place, changes
 * nothing it serves.  A malformed data.mdb is an error, never a crash.
 * Safe to share between threads, each with its own vbfs_txn.  Writes
 * nothing to the index directory but LMDB's reader lock slot.  Call it
 * before starting threads (it forks a probe).
 */
vbfs_err vbfs_index_open(const char *dir, const char *verify_key,
			 vbfs_index **out, char why[VBFS_WHY_LEN]);

/* What an opener may require beyond a whole index (a NULL/0 field: no
 * requirement).  A backup id or an age is only as trustworthy as the
 * index's signature: require verify_key too against a hostile writer. */
struct vbfs_index_expect {
	const char *verify_key;     /* signed by this PEM Ed25519 public key */
	const char *backup_id;      /* exactly this backup id */
	double max_age;             /* built (meta `updated`) at most this many seconds ago */
};
/* vbfs_index_open with requirements; a mismatch is VBFS_ERR_SIGNATURE or
 * VBFS_ERR_EXPECT with one line in `why`. */
vbfs_err vbfs_index_open_expect(const char *dir, const struct vbfs_index_expect *x,
				vbfs_index **out, char why[VBFS_WHY_LEN]);
void     vbfs_index_close(vbfs_index *idx);
const struct vbfs_meta *vbfs_index_meta(const vbfs_index *idx);
const char *vbfs_index_path(const vbfs_index *idx);   /* absolute */

/* A turn at the index's snapshot.  Lookups are serialised: hold a turn
 * only around lookups (microseconds), never across I/O or hashing, and
 * never two at once on one thread.  Entry pointers are valid until the
 * turn ends (reset/end). */
vbfs_err vbfs_txn_begin(vbfs_index *idx, vbfs_txn **out);  /* takes the turn */
void     vbfs_txn_reset(vbfs_txn *t);        /* gives it back, keeps the handle */
vbfs_err vbfs_txn_renew(vbfs_txn *t);        /* takes it again */
void     vbfs_txn_end(vbfs_txn *t);

vbfs_err vbfs_txn_get(vbfs_txn *t, uint64_t id, struct vbfs_entry *e);
vbfs_err vbfs_txn_lookup(vbfs_txn *t, uint64_t parent, const char *name,
			 size_t name_len, struct vbfs_entry *e);
/* Resolve a relative path ("" or "." = root; no leading slash needed). */
vbfs_err vbfs_txn_lookup_path(vbfs_txn *t, const char *path,
			      struct vbfs_entry *e);
/* The expected digest of one block of a regular file.  `id` is the
 * entry's vbfs_entry_data_id() (a hard link's digests are its holder's). */
vbfs_err vbfs_txn_digest(vbfs_txn *t, uint64_t id, uint64_t block,
			 uint8_t out[VBFS_DIGEST_LEN]);
/* Sparse files (entries with VBFS_F_HOLES): was block `block` a hole in
 * the store when indexed?  A whole block only: a block partly hole, partly
 * data is data.  `id` as for vbfs_txn_digest.  Errors: LMDB, FORMAT. */
vbfs_err vbfs_txn_hole(vbfs_txn *t, uint64_t id, uint64_t block, bool *hole);
/* The first block at or after `from` (and before `nblocks`) that was a hole
 * (want_hole) or data (!want_hole); `nblocks` when there is none.  What
 * lseek SEEK_HOLE / SEEK_DATA answer through the mount. */
vbfs_err vbfs_txn_seek_block(vbfs_txn *t, uint64_t id, uint64_t nblocks, uint64_t from,
			     bool want_hole, uint64_t *out);

/*
 * Children of directory `parent` in name order, starting after the child
 * with id `after` (0: from the first).  `fn` returns non-zero to stop.
 */
typedef int (*vbfs_entry_fn)(void *ctx, const struct vbfs_entry *e);
vbfs_err vbfs_txn_readdir(vbfs_txn *t, uint64_t parent, uint64_t after,
			  vbfs_entry_fn fn, void *ctx);
/* Every entry, in id order. */
vbfs_err vbfs_txn_foreach(vbfs_txn *t, vbfs_entry_fn fn, void *ctx);

/* ---- the verdict on a block: block.c ------------------------------------ */

enum vbfs_verdict {
	VBFS_BLOCK_OK = 0,
	VBFS_BLOCK_TRANSIENT,   /* mismatch, then matched when read again */
	VBFS_BLOCK_CORRUPT,     /* full length present, digest differs */
	VBFS_BLOCK_MISSING,     /* short: the store file ends inside the block */
	VBFS_BLOCK_UNREADABLE,  /* the store returned an error (errno in .err) */
};

/* Sparse files: the block's layout in the store against the index's. */
enum vbfs_layout {
	VBFS_LAYOUT_SAME = 0,
	VBFS_LAYOUT_HOLE_TO_DATA,   /* a hole when indexed, data now */
	VBFS_LAYOUT_DATA_TO_HOLE,   /* data when indexed, a hole now */
};

struct vbfs_block_check {
	enum vbfs_verdict verdict;
	int      err;                       /* errno for UNREADABLE */
	size_t   got;                       /* bytes read */
	uint8_t  actual[VBFS_DIGEST_LEN];   /* valid for OK/TRANSIENT/CORRUPT */
	enum vbfs_layout layout;            /* set by vbfs_block_judge() only */
};

/*
 * THE verification function.  Read `length` bytes at `offset` from `fd`
 * into `buf` (page aligned, >= length bytes), SHA-256 them and compare with
 * `expected`.  On a mismatch the block is dropped from the page cache and
 * read once more: a match then is TRANSIENT (bytes in buf are good).
 * Only OK and TRANSIENT leave bytes in `buf` that may be served.
 */
enum vbfs_verdict vbfs_block_verify(int fd, uint64_t offset, size_t length,
				    const uint8_t expected[VBFS_DIGEST_LEN],
				    void *buf, struct vbfs_block_check *out);

/*
 * The same verdict on bytes already in memory (a replica's block, or one
 * rebuilt from parity): SHA-256 of buf[0..length) against `expected`.
 * OK or CORRUPT; only OK bytes may be served.
 */
enum vbfs_verdict vbfs_block_verify_bytes(const void *buf, size_t length,
					  const uint8_t expected[VBFS_DIGEST_LEN],
					  struct vbfs_block_check *out);

/*
 * vbfs_block_verify() for a block of a file whose holes were indexed
 * (`hole`: the index recorded this block as a hole).  A hole block the
 * store still has as a hole is served as zeros without reading, after the
 * zero block's digest is checked against `expected`; one that holds data
 * now is read and verified like any block.  A data block that reads as
 * zeros is checked for having become a hole.  Any change of layout is
 * reported in out->layout (the bytes' verdict is unchanged by it): the
 * callers log it as a `changed` event, so a hole that became data, or data
 * that became a hole, is damage even when the bytes still verify.
 */
enum vbfs_verdict vbfs_block_judge(int fd, uint64_t offset, size_t length, bool hole,
				   const uint8_t expected[VBFS_DIGEST_LEN],
				   void *buf, struct vbfs_block_check *out);
/* The SHA-256 of `length` zero bytes: a hole block's digest. */
void vbfs_zero_digest(size_t length, uint8_t out[VBFS_DIGEST_LEN]);

/* pread() until `length` bytes, the end of the file, or an error (-1,
 * errno).  The build's hashing and the verdict read the store the same way. */
ssize_t vbfs_block_read(int fd, void *buf, size_t length, uint64_t offset);

/* Page-aligned buffer for block I/O.  malloc(1 MiB) returns an address 16
 * bytes past a page boundary, and reading into it made the kernel's
 * page-cache copy 3-4x slower (measured: 0.42 s of kernel time per GiB
 * instead of 0.11 s). */
void *vbfs_block_buf(size_t size);

/* ---- events: event.c ---------------------------------------------------- */

enum vbfs_event_kind {
	VBFS_EV_CORRUPT = 0, VBFS_EV_MISSING, VBFS_EV_UNREADABLE, VBFS_EV_CHANGED,
	VBFS_EV_UNINDEXED, VBFS_EV_TRANSIENT, VBFS_EV_INDEX,
	VBFS_EV_UNLISTED,       /* --against: in the store, not in the manifest */
	VBFS_EV_UNCHECKABLE,    /* --against: listed with a non-SHA-256 checksum */
	VBFS_EV_HEALED,         /* a damaged block served from a replica or parity */
	VBFS_EV_COUNT
};

struct vbfs_event {
	enum vbfs_event_kind kind;
	const char *path;               /* relative to the store root */
	size_t   path_len;
	int64_t  block;                 /* -1: not about one block */
	uint64_t offset, length;
	bool     has_expected, has_actual;
	uint8_t  expected[VBFS_DIGEST_LEN], actual[VBFS_DIGEST_LEN];
	const char *detail;             /* optional one-line reason */
	int64_t  time;                  /* Unix seconds; 0 = now */
	/* Healing (source.c): `source` names where good bytes came from
	 * ("replica:DIR" or "parity") for `healed`, or whose copy was refused;
	 * `repair` is judged only when sources were given. */
	const char *source;
	enum { VBFS_REPAIR_UNJUDGED = 0, VBFS_REPAIR_NO, VBFS_REPAIR_YES } repair;
};

/* A source's refused copy of a block (its kind is that copy's verdict): a
 * finding about the replica or parity, logged, but not damage of the store
 * nor counted as such. */
static inline bool vbfs_event_is_refusal(const struct vbfs_event *ev)
{
	return ev->source && ev->repair == VBFS_REPAIR_UNJUDGED && ev->kind != VBFS_EV_HEALED;
}

const char *vbfs_event_kind_name(enum vbfs_event_kind k);
bool        vbfs_event_is_damage(enum vbfs_event_kind k);
/* The kind named `name` ("corrupt"...), or -1 for a name vbfs does not know. */
int         vbfs_event_kind_from_name(const char *name);
/* One JSON object (no newline), malloc'd.  Paths that are not valid UTF-8
 * get U+FFFD for bad bytes plus "path_hex" with the raw bytes. */
char       *vbfs_event_json(const struct vbfs_event *ev);
/* The same object as a cJSON tree (free with cJSON_Delete), for documents
 * that hold events: no detour through text. */
struct cJSON;
struct cJSON *vbfs_event_object(const struct vbfs_event *ev);
/* Fill ev from an event's block verdict. */
void        vbfs_event_from_check(struct vbfs_event *ev, const struct vbfs_entry *e,
				  uint64_t block, uint32_t block_size,
				  const uint8_t expected[VBFS_DIGEST_LEN],
				  const struct vbfs_block_check *chk);

/* ---- build and scrub ---------------------------------------------------- */

struct vbfs_progress {
	uint64_t bytes_done, bytes_total;
	uint64_t files_done, files_total;
};
typedef void (*vbfs_progress_fn)(void *ctx, const struct vbfs_progress *p);
typedef void (*vbfs_event_fn)(void *ctx, const struct vbfs_event *ev);

struct vbfs_build_opts {
	const char *store, *index;
	uint32_t block_size;            /* 0: keep the index's, or default */
	unsigned jobs;                  /* 0: all cores */
	bool full;                      /* rehash everything */
	const char *reuse;              /* --reuse OLD_INDEX: digests of unchanged files, or NULL */
	bool file_digests;              /* also whole-file SHA-256 (export, --against) */
	const char *backup_id;          /* NULL: keep, or the store's name */
	const char *sign_key;           /* PEM Ed25519 secret key, or NULL */
	const char *against;            /* backup-time manifest, or NULL */
	vbfs_progress_fn progress; void *progress_ctx;
	vbfs_event_fn event; void *event_ctx;   /* --against findings, unreadable files */
	volatile int *stop;             /* set non-zero (signal): abort, write nothing */
	struct vbfs_parity_plan *parity;   /* --parity: encode while hashing, or NULL */
};

struct vbfs_build_result {
	uint64_t entries, files_hashed, files_reused, files_removed;
	uint64_t bytes_hashed, bytes_reused;
	uint64_t against_listed, against_mismatched, against_missing, against_unlisted;
	uint64_t against_uncheckable;
	uint64_t files_unreadable;
	uint64_t files_changed;         /* changed while hashed, every attempt */
	uint64_t files_rehashed;        /* changed once, hashed again and recorded */
	uint64_t dirs_unreadable;       /* recorded as "content unknown" */
	uint64_t files_linked;          /* hard links to an inode already indexed: not hashed */
	uint64_t bytes_holes;           /* whole-block holes: recorded, not read */
	uint64_t damage_events;
	double seconds;
};

vbfs_err vbfs_build(const struct vbfs_build_opts *o, struct vbfs_build_result *r,
		    char why[VBFS_WHY_LEN]);

/* --errors-only: one finding to check again (block -1: the whole entry). */
struct vbfs_scrub_target {
	const char *path;
	size_t path_len;
	int64_t block;
};

struct vbfs_scrub_opts {
	const char *store;
	vbfs_index *index;
	unsigned jobs;
	vbfs_progress_fn progress; void *progress_ctx;
	vbfs_event_fn event; void *event_ctx;   /* called under a lock, any thread */
	volatile int *stop;
	struct vbfs_heal *heal;         /* replicas/parity: judge each damaged block */
	/* Scale-out (all optional; see shard.h, resume.h). */
	uint32_t shard_k, shard_n;      /* shard_n == 0: the whole index */
	double deadline;                /* vbfs_monotonic() time to stop at; 0: none */
	const char *resume;             /* state file: continue its pass */
	const struct vbfs_scrub_target *only;   /* just these findings (sorted or not) */
	size_t nonly;
	/* Each block verdict, on the worker's thread (a test's block count). */
	void (*block_done)(void *ctx, const struct vbfs_entry *e, uint64_t block);
	void *block_ctx;
};

/* With `resume`, files/blocks/bytes/events are the pass's so far (this
 * run's and earlier runs'); run_blocks/run_bytes this run's alone. */
struct vbfs_scrub_result {
	uint64_t files, blocks, bytes;
	uint64_t events[VBFS_EV_COUNT];
	uint64_t damage_events;
	double seconds;
	/* with heal: damaged blocks, and how many a source has good bytes for */
	uint64_t blocks_damaged, blocks_repairable;
	bool complete;                  /* every planned block checked */
	uint64_t plan_blocks, plan_bytes;       /* what this shard (pass) covers */
	uint64_t index_bytes;           /* the byte sequence the split divides */
	uint64_t range_begin, range_end;        /* this shard's part of it */
	uint64_t run_blocks, run_bytes;
	uint32_t pass, runs;            /* resume: pass number, runs in it */
};

vbfs_err vbfs_scrub(const struct vbfs_scrub_opts *o, struct vbfs_scrub_result *r,
		    char why[VBFS_WHY_LEN]);

/* ---- store access: store.c ---------------------------------------------- */

/*
 * Open `path` (relative) beneath the store directory fd without following
 * any symlink (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or O_NOFOLLOW at
 * every component).  Read-only, O_NOATIME where permitted.  Returns fd or -1
 * with errno.
 */
int vbfs_store_open(int store_fd, const char *path, int extra_flags);
int vbfs_store_open_root(const char *store);    /* O_DIRECTORY|O_RDONLY */
/* lstat() of a store path, same resolution rules; `target` gets a symlink's
 * target (NUL-terminated, may be truncated) when non-NULL.  0 or -1/errno. */
struct stat;
int vbfs_store_lstat(int store_fd, const char *path, struct stat *st,
		     char *target, size_t target_cap);
/*
 * Open a store path for reading only if it is a regular file: resolved as
 * above to an O_PATH handle, its type checked, then that very file opened
 * (a FIFO or a device planted in the store is never opened).  `st` gets
 * the opened file's fstat.  -1/errno on failure; when the path exists but
 * is not a regular file, st->st_mode says what it is (else it is 0).
 * EAGAIN: the file was swapped between the check and the open.
 */
int vbfs_store_open_reg(int store_fd, const char *path, struct stat *st);

/*
 * Open the store file behind an indexed regular file and judge it before
 * any block is read.  The mount and the scrub both call this, so they agree
 * on what a missing, replaced or grown file is.
 *   OK          fd open; serve blocks through vbfs_block_verify()
 *   GROWN       fd open, file longer than indexed: report `changed` once,
 *               the indexed bytes still verify and serve
 *   RELINKED    fd open, link count differs from the index's (a hard link
 *               added or broken): `changed` once, bytes still verify
 *   MISSING     no such file: one `missing` event, every read fails
 *   CHANGED     not a regular file any more: one `changed` event
 *   UNREADABLE  open failed otherwise: one `unreadable` event
 *   DAMAGED     the index itself marks the file bad (a backup-time manifest
 *               disagreed, or it was unreadable at build time)
 * On every state but OK/GROWN, fd is -1 and `ev` describes the one event.
 */
enum vbfs_file_state {
	VBFS_FILE_OK = 0, VBFS_FILE_GROWN, VBFS_FILE_MISSING, VBFS_FILE_CHANGED,
	VBFS_FILE_UNREADABLE, VBFS_FILE_DAMAGED, VBFS_FILE_RELINKED,
};
enum vbfs_file_state vbfs_file_open(int store_fd, const struct vbfs_entry *e,
				    int *fd, struct vbfs_event *ev);
/* A directory the build could not read is "content unknown": listing it
 * (or looking a name up in it) must fail, never show it empty.  True, with
 * `ev` the one `unreadable` event, when `e` is such a directory. */
bool vbfs_dir_unknown(const struct vbfs_entry *e, struct vbfs_event *ev);

/*
 * Is `idx` an index of this store at all?  The index's top level (up to
 * 1024 of the root's entries, in name order) is looked up in the store by
 * name (any type: a changed entry is damage, not a stranger).  When fewer
 * than half are there, the index was built from another
 * store and every file would read as damage: VBFS_ERR_STORE_MISMATCH, with
 * "index … is not for store …" in `why`.  An index of an empty store
 * matches any store.  Callers offer an explicit override for a store that
 * really lost most of its top level.
 */
vbfs_err vbfs_store_check_index(int store_fd, const char *store, vbfs_index *idx,
				char why[VBFS_WHY_LEN]);

/* ---- healing: source.c (replicas), parity.c (erasure code) -------------- */

/*
 * Where a damaged block's bytes can come from besides the store: replicas
 * (other copies of the store, same relative paths), tried in the order
 * given, then parity (vbfsctl build --parity).  No source is trusted: every
 * candidate goes through the block verdict against the index digest, and
 * only bytes that match are handed back.  Replica files are opened with the
 * store's rules (no symlink followed, read-only, beneath the replica root).
 */
typedef struct vbfs_heal vbfs_heal;

struct vbfs_heal_opts {
	const char *const *replicas;    /* directories, tried in this order */
	size_t nreplicas;
	const char *parity;             /* parity directory, or NULL */
	const char *store;              /* the store: parity reads a stripe's other blocks */
};

/* Open the sources.  VBFS_ERR_IO: a replica or the parity directory cannot
 * be opened; VBFS_ERR_ROOT: the parity does not match what the index
 * recorded (damaged, forged or from another build); VBFS_ERR_NOTFOUND: the
 * index records no parity.  `why` says which. */
vbfs_err vbfs_heal_open(vbfs_index *idx, const struct vbfs_heal_opts *o,
			vbfs_heal **out, char why[VBFS_WHY_LEN]);
void     vbfs_heal_close(vbfs_heal *h);

/*
 * Block `block` of regular file `e` failed in the store: find good bytes.
 * On success the bytes are in `buf` (page aligned, block size) and the
 * source's name ("replica:DIR" or "parity", valid while h is open) is
 * returned; NULL when no source had bytes that verify.  Each refused
 * candidate is passed to `refused` (may be NULL) as an event whose kind is
 * its verdict and whose `source` names it.  Thread-safe; takes its own
 * turns at the index, so the caller must not hold one.
 */
const char *vbfs_heal_block(vbfs_heal *h, const struct vbfs_entry *e, uint64_t block,
			    const uint8_t expected[VBFS_DIGEST_LEN], void *buf,
			    vbfs_event_fn refused, void *ctx);

/*
 * vbfsctl build --parity K+M: Reed-Solomon parity (ISA-L) over the blocks
 * of the index's regular files, written to `dir` (apart from the store;
 * layout in parity.h), and its digest recorded in the index, which is
 * sealed again (root digest; signed with `sign_key`, unsigned without).
 *
 * A plan made before vbfs_build (vbfs_build_opts.parity) encodes the
 * groups whose members the build hashes inline, from the bytes it hashed;
 * vbfs_parity_build, after vbfs_build has committed, takes the groups of
 * the old parity whose members are unchanged (their SHA-256 key matches;
 * each fragment checked against the old parity.idx, itself checked against
 * the old index) and encodes the rest, reading the store.  It writes the
 * parity files atomically (temp + rename).
 */
struct vbfs_parity_opts {
	const char *store, *index, *dir;
	uint32_t k, m;
	const char *sign_key;
	/* The parity an incremental build takes unchanged groups from: the
	 * parity of `reuse_index` (--reuse OLD_INDEX) in `reuse_dir` (default
	 * OLD_INDEX/parity); without reuse_index, `dir` as INDEX records it. */
	const char *reuse_index, *reuse_dir;
	unsigned jobs;                  /* 0: all cores */
	volatile int *stop;
};
struct vbfs_parity_result {
	uint64_t files, stripes, parity_bytes, data_bytes;
	uint64_t groups;                /* groups of both sequences */
	uint64_t groups_inline;         /* encoded while the build hashed */
	uint64_t groups_encoded;        /* all encoded by this build, inline included */
	uint64_t groups_reused;         /* taken whole from the old parity */
	uint64_t fragments_refused;     /* old fragments that did not match their digest */
	uint64_t bytes_read;            /* store bytes read after the build (not inline) */
	char reuse_note[VBFS_WHY_LEN];  /* why no old parity was used, or "" */
	double seconds;                 /* after the build (the inline part is in its time) */
};
typedef struct vbfs_parity_plan vbfs_parity_plan;
/* Opens the old parity to reuse, if any (a missing or refused one is not
 * an error: reuse_note says why).  VBFS_ERR_USAGE for K+M too large for
 * the block size (known only here with block_size 0: then checked by
 * vbfs_parity_build). */
vbfs_err vbfs_parity_plan_new(const struct vbfs_parity_opts *o, vbfs_parity_plan **out,
			      char why[VBFS_WHY_LEN]);
vbfs_err vbfs_parity_build(vbfs_parity_plan *p, struct vbfs_parity_result *r,
			   char why[VBFS_WHY_LEN]);
void     vbfs_parity_plan_free(vbfs_parity_plan *p);
/* "K+M": 1 <= K, 1 <= M, K+M <= 255.  0 ok, -1 not that form. */
int vbfs_parse_parity(const char *s, uint32_t *k, uint32_t *m);

/* build.c: set one meta key of the index at `dir` and seal it again (root
 * digest; signature with `sign_key`, none without), in one transaction. */
vbfs_err vbfs_index_put_meta(const char *dir, const char *key, const void *val, size_t len,
			     const char *sign_key, char why[VBFS_WHY_LEN]);

/* Fill `ev` as the `healed` event for a block served from `source`. */
void vbfs_event_healed(struct vbfs_event *ev, const struct vbfs_entry *e, uint64_t block,
		       uint32_t block_size, const uint8_t expected[VBFS_DIGEST_LEN],
		       const char *source);

/* ---- trust: trust.c ----------------------------------------------------- */

vbfs_err vbfs_keygen(const char *secret_path, const char *public_path,
		     char why[VBFS_WHY_LEN]);

/* ---- files written whole: atomic_file.c --------------------------------- */

/*
 * A file written whole or not at all: a temp file PATH.tmp.XXXXXX beside
 * PATH (never named *.prom, so a textfile collector skips it), made `mode`,
 * then fsync'd and renamed over PATH by vbfs_atomic_commit.  On any failure
 * the temp file is removed, PATH is left as it was, `why` says
 * "PATH: step: reason" and errno is kept.  A caller that writes through
 * stdio does so on fdopen(dup(f.fd)) and fcloses that before the commit.
 */
struct vbfs_atomic_file {
	const char *path;
	char *tmp;
	int fd;
};
vbfs_err vbfs_atomic_open(struct vbfs_atomic_file *f, const char *path,
			  unsigned mode, char why[VBFS_WHY_LEN]);
vbfs_err vbfs_atomic_commit(struct vbfs_atomic_file *f, char why[VBFS_WHY_LEN]);
void     vbfs_atomic_abort(struct vbfs_atomic_file *f);
/* Room for element n of a realloc'd array of *cap elements: the array
 * (moved, *cap doubled from `first`, when it was full), or NULL when out of
 * memory (the old array and *cap unchanged).  Every growing list uses it. */
void    *vbfs_grow(void *array, size_t *cap, size_t n, size_t elem, size_t first);

/* The whole buffer at once: open, write, commit.  PATH being a symbolic
 * link is refused (metrics, reports: a planted link is noticed). */
vbfs_err vbfs_write_file_atomic(const char *path, const void *buf, size_t len,
				unsigned mode, char why[VBFS_WHY_LEN]);
/* Write all n bytes, retrying short writes and EINTR: at offset `off`
 * (pwrite), or at the file position when off < 0.  0, or -1 with errno. */
int      vbfs_write_all(int fd, const void *buf, size_t n, off_t off);

/* ---- small helpers: util.c ---------------------------------------------- */

/* The one formatter of a `why` message: vsnprintf into VBFS_WHY_LEN bytes
 * (cut to fit); does nothing when why is NULL. */
void    vbfs_whyf(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void    vbfs_hex(const uint8_t *bin, size_t n, char *out);  /* out: 2n+1 */
int     vbfs_hexval(int c);             /* one hex digit's value, -1 if not hex */
/* Exactly 2n hex digits (either case) in hex[0..hexlen) to n bytes: 0 ok,
 * -1 for a wrong length or a non-hex character.  vbfs_unhex: the same on
 * a NUL-terminated string. */
int     vbfs_unhexn(const char *hex, size_t hexlen, uint8_t *out, size_t n);
int     vbfs_unhex(const char *hex, uint8_t *out, size_t n);   /* 0 ok */
/* Decode the one UTF-8 sequence at s[0..n): its length, with the code point
 * in *cp, or 0 when the bytes are not valid there (overlong, truncated,
 * beyond U+10FFFF).  `surrogates`: also accept encoded U+D800..U+DFFF
 * (WTF-8, how Python's lone surrogates are carried). */
size_t  vbfs_utf8_decode(const unsigned char *s, size_t n, bool surrogates, uint32_t *cp);
/* A NUL-terminated, malloc'd UTF-8 copy of (s, n): bytes that are not valid
 * UTF-8, and NULs, become U+FFFD, and *clean is set false.  NULL: no memory. */
char   *vbfs_utf8_sanitize(const char *s, size_t n, bool *clean);
void    vbfs_sha256(const void *p, size_t n, uint8_t out[VBFS_DIGEST_LEN]);
int64_t vbfs_now(void);
double  vbfs_monotonic(void);
void    vbfs_rfc3339(int64_t t, char out[32]);
int     vbfs_parse_size(const char *s, uint64_t *out);       /* 4K, 1M, 4096 */
int     vbfs_parse_duration(const char *s, double *out);     /* 90s, 1h30m */
unsigned vbfs_ncpu(void);

#endif
