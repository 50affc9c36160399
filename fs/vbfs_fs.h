/*
 * vbfs_fs.h - state shared by the mount's files (main.c, ops.c, cache.c,
 * readahead.c, sink.c).  The verification itself lives in libvbfs
 * (vbfs_block_verify); this layer decides when to call it and how to reply.
 */
#ifndef VBFS_FS_H
#define VBFS_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "vbfs.h"

/* ---- cache.c: recently verified blocks, keyed (file id, block) ---------- */

enum slot_state { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_FAILED };

struct cache_slot {
	/* all fields protected by cache->lock, except buf's contents, which
	 * belong to the filler while FILLING and are read-only once READY */
	uint64_t file_id, block;
	enum slot_state state;
	unsigned refs;                  /* readers copying out of buf */
	uint64_t last_use;              /* LRU clock */
	bool unserved;                  /* filled ahead, no reader has asked yet */
	struct vbfs_block_check chk;    /* the verdict (READY: OK/TRANSIENT) */
	uint8_t expected[VBFS_DIGEST_LEN];
	uint32_t len;
	void *buf;                      /* page aligned: `whole`, or `small` for a
					 * block that fits (cache_fit) */
	void *whole;                    /* block_size bytes */
	void *small;                    /* CACHE_SMALL bytes, or NULL */
};

struct vbfs_cache {
	pthread_mutex_t lock;
	pthread_cond_t filled;          /* a FILLING slot became READY/FAILED */
	struct cache_slot *slots;
	unsigned nslots;
	uint64_t clock;
	uint32_t block_size;
	uint64_t evicted_unserved;      /* blocks verified ahead, dropped unread */
	void *arena;                    /* every slot's buffer (cache.c) */
	size_t arena_len;
	void *small_arena;              /* every slot's small buffer, or NULL */
	size_t small_len;
};

enum cache_result { CACHE_HIT, CACHE_MISS, CACHE_FULL };

int  cache_init(struct vbfs_cache *c, unsigned nslots, uint32_t block_size);
void cache_destroy(struct vbfs_cache *c);
/*
 * Find (file, block).  HIT: *slot is READY or FAILED and pinned; copy out,
 * then cache_release().  MISS: *slot is reserved FILLING for the caller,
 * who must cache_publish() it.  A slot being filled by another thread is
 * waited for.  FULL: every slot is pinned or filling; verify uncached.
 * With `no_wait` (prefetch), a FILLING slot or a READY one counts as HIT
 * without pinning: *slot is NULL.
 */
enum cache_result cache_get(struct vbfs_cache *c, uint64_t file_id, uint64_t block,
			    bool no_wait, struct cache_slot **slot);
/* Finish filling: READY when the verdict lets bytes be served, else FAILED. */
void cache_publish(struct vbfs_cache *c, struct cache_slot *s);
/* Before filling a MISS slot with a block of `len` bytes: point its buf
 * at the smallest of its buffers that holds them. */
void cache_fit(struct cache_slot *s, uint32_t len);
void cache_release(struct vbfs_cache *c, struct cache_slot *s);
/* Blocks verified ahead and evicted before any reader asked for them. */
uint64_t cache_evicted_unserved(struct vbfs_cache *c);
/* Is (file, block) cached or being filled?  A hint only: no slot is pinned. */
bool cache_has(struct vbfs_cache *c, uint64_t file_id, uint64_t block);

/* ---- the open file ------------------------------------------------------ */

/* What a store path named when a file was judged (files.c): a READ with
 * no OPEN before it judges the file again when this changed. */
struct store_id {
	int err;                        /* 1: the path did not stat */
	uint64_t dev, ino;
	int64_t size;
	unsigned type;                  /* st_mode & S_IFMT */
};

struct open_file {
	atomic_uint refs;               /* the FUSE handle + queued prefetches */
	struct vbfs_entry e;            /* path points at `path` */
	char *path;
	int fd;                         /* -1 unless state is OK, GROWN or RELINKED */
	/* Cache key of this file's blocks: the link holder's id when the store
	 * file is still the inode recorded at build (every hard link of it then
	 * shares one set of verified blocks), else this entry's own key. */
	uint64_t cache_id;
	enum vbfs_file_state state;
	struct vbfs_event state_ev;     /* the one event for a bad state */
	_Atomic int64_t last_block;     /* sequential-read detection */
	_Atomic int64_t ahead;          /* blocks below this were handed to prefetch */
	bool unindexed;                 /* served unverified (-o unindexed=allow) */
	struct store_id judged;         /* the store file `state` is about */
	atomic_bool looked_ahead;       /* the next files' look-ahead was queued */
};

void open_file_put(struct open_file *of);

/* files.c: open files by inode, for reads without OPEN (no_open). */
struct file_table;
struct file_table *files_new(void);
void files_free(struct file_table *t);
/* The table's open_file for `ino` with a reference for the caller, or NULL. */
struct open_file *files_get(struct file_table *t, uint64_t ino);
/* Hold `of` (a new reference), replacing the entry for the same inode. */
void files_put(struct file_table *t, struct open_file *of);
void store_id_of(int store_fd, const char *path, struct store_id *id);
bool store_id_same(const struct store_id *a, const struct store_id *b);

/* lookahead.c: the files a reader will read next, in the order it has
 * been reading their directory (name order: tar, rsync; inode order:
 * cp -a; neither: pgBackRest).  Thread-safe. */
enum lookahead_order { LOOKAHEAD_NONE, LOOKAHEAD_NAME, LOOKAHEAD_INO };
struct lookahead;
struct lookahead *lookahead_new(void);
void lookahead_free(struct lookahead *la);
/* The first read of `e` has arrived: in which order is its reader going
 * (after the first read before it)?  Call it before answering.  `t`: a
 * turn the caller holds. */
enum lookahead_order lookahead_note(struct lookahead *la, const struct vbfs_meta *m, vbfs_txn *t,
				    const struct vbfs_entry *e);
/* Call fn for the files after `e` in `order` (none for LOOKAHEAD_NONE)
 * until fn returns non-zero; entries are valid within the turn `t`. */
void lookahead_next(struct lookahead *la, const struct vbfs_meta *m, vbfs_txn *t,
		    const struct vbfs_entry *e, enum lookahead_order order, vbfs_entry_fn fn, void *ctx);

/* ---- the filesystem ----------------------------------------------------- */

#define HEAL_SOURCES_MAX 9              /* 8 replicas and parity */

struct vbfs_fs {
	vbfs_index *index;
	const struct vbfs_meta *meta;
	int store_fd;
	char *store, *index_path, *log_path, *verify_key;
	bool foreground, allow_unindexed, allow_other;
	bool no_open;                    /* the kernel opens files itself (files.c) */
	struct file_table *files;
	unsigned readahead_blocks;       /* verify this many blocks ahead */
	unsigned next_files;             /* on open, look ahead this many files */
	struct lookahead *lookahead;     /* in which order (lookahead.c) */
	unsigned cache_mb;
	struct vbfs_cache cache;
	struct prefetch *prefetch;
	/* counters, read by the stats xattr */
	/* blocks_verified: hashes of a block that matched (once per block per
	 * mount unless it was evicted and read again); bytes_served: bytes
	 * returned to readers, every one from a verified block. */
	atomic_uint_fast64_t blocks_verified, bytes_verified, cache_hits, reads;
	atomic_uint_fast64_t bytes_served;
	atomic_uint_fast64_t events[VBFS_EV_COUNT];
	/* healing: -o replica=DIR[:DIR...], -o parity=DIR (NULL: none) */
	vbfs_heal *heal;
	/* sink.c */
	int log_fd;
	pthread_mutex_t sink_lock;
	uint64_t *seen;                 /* dedupe set of (file, block, kind) */
	size_t seen_cap, seen_n;
	char mountpoint_dev[32];
	/* healed blocks by source, and damaged blocks no source could heal
	 * (each block once per mount, as the events); under sink_lock */
	struct { const char *source; uint64_t blocks; } healed[HEAL_SOURCES_MAX];
	unsigned nhealed;
	uint64_t unrepairable;
};

/* sink.c: log an event once per (file, block, kind) per mount. */
void sink_init(struct vbfs_fs *fs);
void sink_event(struct vbfs_fs *fs, uint64_t file_id, const struct vbfs_event *ev);
uint64_t sink_damage_count(struct vbfs_fs *fs);
/* The stats xattr's JSON; the store and index paths only `with_paths`
 * (the caller is the mount's owner or root). */
char *sink_stats_json(struct vbfs_fs *fs, bool with_paths);
void sink_close(struct vbfs_fs *fs);

/* readahead.c: verify the next blocks of a sequential reader on workers. */
struct prefetch *prefetch_start(struct vbfs_fs *fs, unsigned threads);
void prefetch_hint(struct prefetch *p, struct open_file *of, uint64_t block);
/* Verify blocks [from, to) of `of` (used for the files a reader opens next). */
void prefetch_range(struct prefetch *p, struct open_file *of, uint64_t from, uint64_t to);
void prefetch_stop(struct prefetch *p);

/* ops.c */
extern const struct fuse_lowlevel_ops vbfs_ops;
/* Verify one block into the cache (or `fallback` when the cache is full)
 * and return the slot; used by reads and prefetch alike. */
struct cache_slot *fs_block_get(struct vbfs_fs *fs, struct open_file *of, uint64_t block,
				struct cache_slot *fallback, bool prefetch);

#endif
