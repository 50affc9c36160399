/*
 * build.c - walk the store, hash regular files on every core, and write the
 * whole index in ONE LMDB write transaction: a crash, a kill -9 or Ctrl-C
 * before the commit leaves the previous index exactly as it was.
 *
 * Steps (all inside the write txn):
 *   1. walk the store (no symlink followed), parents before children;
 *   2. give each entry its old id when the path existed with the same type,
 *      and decide which files keep their digests (same size, mtime, inode,
 *      or with --reuse: found unchanged in the previous snapshot's index);
 *      hard links: the first path of each store inode (in walk order) holds
 *      the digests, the others name it (record `link`) and are not hashed;
 *   3. drop the old directory entries and every removed id;
 *   4. hash the rest on a worker pool (files split into chunks of blocks so
 *      one big file uses both cores), writing each file's digest runs on
 *      this thread as it completes (LMDB writes belong to one thread);
 *      sparse files: whole-block holes (SEEK_DATA/SEEK_HOLE) are not read,
 *      get the zero block's digest and a bit in the file's hole map;
 *   5. meta, root digest, optional signature; commit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "formats.h"
#include "index_internal.h"
#include "pool.h"
#include "parity.h"
#include "reuse.h"

#define CHUNK_BLOCKS 64u   /* blocks per hashing task (64 MiB at 1 MiB) */
#define RING_PIECES  64u   /* hashed pieces in flight from workers to the writer */
#define REHASH_MAX   3     /* attempts after the first for a file that changed */
/* hash_range() outcomes besides 0 (recorded) and an errno (unreadable): */
#define HASH_CHANGED (-1)  /* the file was not the same before, during and after */
#define HASH_RACY    (-2)  /* modified within a clock tick of the hash: a write
			    * during the hash could have left no trace */

/* One entry found in the store. */
struct walk_entry {
	char *path;                 /* relative, "" for the root */
	size_t parent;              /* index into the walk array */
	struct stat st;
	char *target;               /* symlink target */
	uint64_t id;
	bool reused, has_old;
	struct vbfs_entry old;      /* when has_old: decoded old record (pointers invalid after writes) */
	uint8_t old_digest[VBFS_DIGEST_LEN];
	uint32_t old_flags;
	/* hashing, regular files only: digests go to LMDB as they are made */
	uint64_t nblocks;
	uint64_t tasks_left;        /* writer thread only */
	atomic_int failed;          /* 0, an errno, HASH_CHANGED or HASH_RACY */
	uint8_t file_digest[VBFS_DIGEST_LEN];
	uint32_t flags;
	const struct reuse_file *reuse_from;   /* --reuse: the old file to copy digests from */
	/* hard links: a later path of a store inode names the first one */
	bool follower;
	size_t link_to;             /* walk index of the holder (followers only) */
	uint64_t link_id;           /* the holder's id, set once ids are assigned */
	/* sparse files: 1 per block that is a hole, or NULL (no holes possible) */
	uint8_t *holes;
	atomic_uint_fast64_t hole_bytes;
	int64_t parity_file;        /* its handle in o->parity's plan, -1: none */
};

struct walk {
	struct walk_entry *v;
	size_t n, cap;
};

/* Up to CHUNK_BLOCKS digests of one file, from a worker to the writer.
 * Every task sends exactly one piece with `end` set, as its last. */
struct piece {
	size_t entry;
	uint64_t first, count;
	bool end;
	uint8_t dig[CHUNK_BLOCKS][VBFS_DIGEST_LEN];
};

struct build {
	const struct vbfs_build_opts *o;
	struct vbfs_build_result *r;
	char *why;
	int store_fd;
	uint32_t block_size;
	struct walk w;
	/* The tasks are numbered, not stored (a 1 EiB file has 2^34 of them):
	 * file k of `hashed` owns tasks task_end[k-1] .. task_end[k]-1. */
	size_t *hashed;             /* walk indexes of the files to hash */
	uint64_t *task_end;
	size_t nhashed, files_done;
	uint64_t ntasks;
	size_t *retry;              /* files that changed while hashed */
	size_t nretry;
	/* pieces: workers -> writer thread, a bounded ring */
	pthread_mutex_t lock;
	pthread_cond_t cond, not_full;
	struct piece *ring;
	size_t ring_head, ring_n;
	vbfs_err put_err;           /* an index write failed in a re-hash */
	int64_t tick_ns;            /* twice the clock tick file times are stamped with */
	uint64_t bytes_done;
	/* LMDB */
	MDB_env *env;
	MDB_txn *txn;
	struct idx_dbs db;
	struct vbfs_manifest *against;
	struct reuse *reuse;        /* --reuse OLD_INDEX, or NULL */
	volatile int abort;         /* workers stop: interrupted or failed */
};

static vbfs_err io_err(char *why, const char *what, const char *path)
{
	vbfs_whyf(why, "%s%s%s: %s", what, *path ? " " : "", path, strerror(errno));
	return VBFS_ERR_IO;
}

static void emit(struct build *b, const struct vbfs_event *ev)
{
	if (vbfs_event_is_damage(ev->kind))
		b->r->damage_events++;
	if (b->o->event)
		b->o->event(b->o->event_ctx, ev);
}

/* ---- 1. walk --------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct walk_entry *walk_push(struct walk *w)
{
	struct walk_entry *v = vbfs_grow(w->v, &w->cap, w->n, sizeof *v, 1024);
	if (!v)
		return NULL;
	w->v = v;
	struct walk_entry *e = &w->v[w->n++];
	memset(e, 0, sizeof *e);
	return e;
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), n = strlen(name);
	char *p = malloc(a + n + 2);
	if (!p) return NULL;
	if (a) {
		memcpy(p, dir, a);
		p[a++] = '/';
	}
	memcpy(p + a, name, n + 1);
	return p;
}

/*
 * Directory `di` whose entries cannot all be known (it cannot be opened or
 * read, or one of its entries cannot be stat'ed): forget what was found in
 * it, flag it "content unknown" (the mount lists it with EIO, verify
 * reports it) and report it.  Never an empty directory in the index that
 * was not empty in the store.
 */
static void dir_unknown(struct build *b, size_t di, size_t first_child, const char *what)
{
	char detail[VBFS_WHY_LEN];
	int err = errno;
	for (size_t i = first_child; i < b->w.n; i++) {
		free(b->w.v[i].path);
		free(b->w.v[i].target);
	}
	b->w.n = first_child;
	b->w.v[di].flags |= VBFS_F_UNREADABLE;
	b->r->dirs_unreadable++;
	snprintf(detail, sizeof detail, "%s: %s; its content is unknown to the index",
		 what, strerror(err));
	struct vbfs_event ev = { .kind = VBFS_EV_UNREADABLE, .path = b->w.v[di].path,
		.path_len = strlen(b->w.v[di].path), .block = -1, .detail = detail };
	emit(b, &ev);
}

/* Walk directory entry `di` (already pushed, st filled) whose fd is `dfd`;
 * depth-first, children sorted, so the array has parents before children
 * and each directory's children together. */
static vbfs_err walk_dir(struct build *b, size_t di, int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, first_child = b->w.n;
	vbfs_err err = VBFS_OK;
	if (!d) {
		dir_unknown(b, di, first_child, "cannot read directory");
		close(dfd);
		return VBFS_OK;
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char **nn = vbfs_grow(names, &cap, n, sizeof *nn, 64);
		if (!nn) { err = VBFS_ERR_NOMEM; goto out; }
		names = nn;
		if (!(names[n] = strdup(de->d_name))) { err = VBFS_ERR_NOMEM; goto out; }
		n++;
	}
	if (errno) {
		dir_unknown(b, di, first_child, "cannot read directory");
		goto out;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_names);
	for (size_t i = 0; i < n && !err; i++) {
		if (b->o->stop && *b->o->stop) { err = VBFS_ERR_INTERRUPTED; break; }
		struct walk_entry *e = walk_push(&b->w);
		if (!e) { err = VBFS_ERR_NOMEM; break; }
		size_t ei = b->w.n - 1;
		e->parent = di;
		if (!(e->path = join(b->w.v[di].path, names[i]))) { err = VBFS_ERR_NOMEM; break; }
		if (fstatat(dirfd(d), names[i], &e->st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT) {   /* removed since readdir: not in the store */
				free(e->path);
				b->w.n--;
				continue;
			}
			dir_unknown(b, di, first_child, "cannot stat an entry");
			break;
		}
		if (S_ISLNK(e->st.st_mode)) {
			size_t tcap = (size_t)e->st.st_size + 1;
			if (tcap < 2 || tcap > 65536) tcap = 4096;
			char *t = malloc(tcap);
			ssize_t tl = t ? readlinkat(dirfd(d), names[i], t, tcap - 1) : -1;
			if (tl < 0) {
				free(t);
				if (!t) { err = VBFS_ERR_NOMEM; break; }
				dir_unknown(b, di, first_child, "cannot read a symlink");
				break;
			}
			t[tl] = '\0';
			e->target = t;
		} else if (S_ISDIR(e->st.st_mode)) {
			int cfd = openat(dirfd(d), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0) {
				/* Recorded (so the mount shows it) as content unknown. */
				dir_unknown(b, ei, b->w.n, "cannot open directory");
				continue;
			}
			err = walk_dir(b, ei, cfd);
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return err;
}

static uint32_t type_of(mode_t m)
{
	if (S_ISREG(m)) return VBFS_T_REG;
	if (S_ISDIR(m)) return VBFS_T_DIR;
	if (S_ISLNK(m)) return VBFS_T_LNK;
	if (S_ISFIFO(m)) return VBFS_T_FIFO;
	if (S_ISCHR(m)) return VBFS_T_CHR;
	if (S_ISBLK(m)) return VBFS_T_BLK;
	return VBFS_T_SOCK;
}

/* ---- 2. ids and reuse ------------------------------------------------- */

static vbfs_err find_old(struct build *b, uint64_t parent_id, const char *name,
			 struct vbfs_entry *old)
{
	uint8_t key[8 + 256];
	size_t n = strlen(name);
	if (n > 255)
		return VBFS_ERR_NOTFOUND;
	idx_be64(key, parent_id);
	memcpy(key + 8, name, n);
	MDB_val k = { 8 + n, key }, v;
	if (mdb_get(b->txn, b->db.dirents, &k, &v) || v.mv_size != 8)
		return VBFS_ERR_NOTFOUND;
	uint8_t ik[8];
	memcpy(ik, v.mv_data, 8);
	MDB_val k2 = { 8, ik }, v2;
	if (mdb_get(b->txn, b->db.inodes, &k2, &v2))
		return VBFS_ERR_NOTFOUND;
	return vbfs_record_decode(v2.mv_data, v2.mv_size, old);
}

static void assign_ids(struct build *b, uint64_t *next_id, bool same_block_size)
{
	for (size_t i = 0; i < b->w.n; i++) {
		struct walk_entry *e = &b->w.v[i];
		struct vbfs_entry old;
		if (i == 0) {
			e->id = VBFS_ROOT_ID;
			continue;
		}
		const char *name = strrchr(e->path, '/');
		name = name ? name + 1 : e->path;
		struct walk_entry *p = &b->w.v[e->parent];
		if (p->has_old || e->parent == 0) {
			if (find_old(b, p->id, name, &old) == VBFS_OK &&
			    old.type == type_of(e->st.st_mode)) {
				e->has_old = true;
				e->id = old.id;
				e->old_flags = old.flags;
				memcpy(e->old_digest, old.file_digest, VBFS_DIGEST_LEN);
				e->reused = S_ISREG(e->st.st_mode) && !b->o->full && same_block_size &&
					!b->against &&
					old.size == (uint64_t)e->st.st_size &&
					old.mtime_sec == e->st.st_mtim.tv_sec &&
					old.mtime_nsec == (uint32_t)e->st.st_mtim.tv_nsec &&
					old.store_ino == e->st.st_ino && !old.link &&
					!(old.flags & (VBFS_F_UNREADABLE | VBFS_F_DAMAGED)) &&
					(!b->o->file_digests || (old.flags & VBFS_F_FILE_DIGEST));
				continue;
			}
		}
		e->id = (*next_id)++;
	}
	b->w.v[0].has_old = true;
}

/* ---- hard links ---------------------------------------------------------- */

struct link_key { uint64_t dev, ino; size_t i; };

static int cmp_link_key(const void *a, const void *c)
{
	const struct link_key *x = a, *y = c;
	if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Paths of one store inode (same st_dev and st_ino): the first in walk
 * order holds the digests, the others follow it and are never hashed. */
static vbfs_err group_links(struct build *b)
{
	struct link_key *k;
	size_t n = 0;
	for (size_t i = 0; i < b->w.n; i++)
		n += S_ISREG(b->w.v[i].st.st_mode) && b->w.v[i].st.st_nlink > 1;
	if (!n)
		return VBFS_OK;
	if (!(k = malloc(n * sizeof *k)))
		return VBFS_ERR_NOMEM;
	n = 0;
	for (size_t i = 0; i < b->w.n; i++)
		if (S_ISREG(b->w.v[i].st.st_mode) && b->w.v[i].st.st_nlink > 1)
			k[n++] = (struct link_key){ b->w.v[i].st.st_dev, b->w.v[i].st.st_ino, i };
	qsort(k, n, sizeof *k, cmp_link_key);
	for (size_t j = 1, h = 0; j < n; j++) {
		if (k[j].dev != k[h].dev || k[j].ino != k[h].ino) {
			h = j;   /* the first path of the next inode */
			continue;
		}
		struct walk_entry *w = &b->w.v[k[j].i];
		w->follower = true;
		w->link_to = k[h].i;
		b->r->files_linked++;
	}
	free(k);
	return VBFS_OK;
}

/* ---- LMDB writes -------------------------------------------------------- */

static vbfs_err put(struct build *b, MDB_dbi dbi, const void *key, size_t klen,
		    const void *val, size_t vlen, const char *what)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc = mdb_put(b->txn, dbi, &k, &v, 0);
	return rc ? idx_lmdb_err(rc, what, b->why) : VBFS_OK;
}

static vbfs_err put_u64(struct build *b, const char *key, uint64_t val)
{
	uint8_t v[8];
	for (int i = 0; i < 8; i++) v[i] = (uint8_t)(val >> (8 * i));
	return put(b, b->db.meta, key, strlen(key), v, 8, "write meta");
}

static vbfs_err put_str(struct build *b, const char *key, const char *val)
{
	return put(b, b->db.meta, key, strlen(key), val, strlen(val), "write meta");
}

/* Delete every digest run of file `id`. */
static vbfs_err delete_runs(struct build *b, uint64_t id)
{
	MDB_cursor *cur;
	uint8_t key[16];
	MDB_val k = { 16, key }, v;
	int rc;
	idx_be64(key, id);
	idx_be64(key + 8, 0);
	if ((rc = mdb_cursor_open(b->txn, b->db.blocks, &cur)))
		return idx_lmdb_err(rc, "open cursor", b->why);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == 16 && idx_get_be64(k.mv_data) == id) {
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
		if (rc == EINVAL || rc == MDB_NOTFOUND) /* deleted the last item */
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? idx_lmdb_err(rc, "delete digests", b->why) : VBFS_OK;
}

static void fill_entry(const struct walk_entry *w, uint64_t parent_id, struct vbfs_entry *e)
{
	memset(e, 0, sizeof *e);
	e->id = w->id;
	e->parent = parent_id;
	e->type = type_of(w->st.st_mode);
	e->mode = w->st.st_mode;
	e->uid = w->st.st_uid;
	e->gid = w->st.st_gid;
	e->nlink = (uint32_t)w->st.st_nlink;
	e->size = (uint64_t)w->st.st_size;
	e->mtime_sec = w->st.st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)w->st.st_mtim.tv_nsec;
	e->rdev = w->st.st_rdev;
	e->store_ino = w->st.st_ino;
	e->store_ctime_sec = w->st.st_ctim.tv_sec;
	e->store_ctime_nsec = (uint32_t)w->st.st_ctim.tv_nsec;
	e->store_dev = w->st.st_dev;
	e->alloc_blocks = (uint64_t)w->st.st_blocks;
	e->link = w->link_id;
	e->path = w->path;
	e->path_len = strlen(w->path);
	e->target = w->target;
	e->target_len = w->target ? strlen(w->target) : 0;
	e->flags = w->flags;
	memcpy(e->file_digest, w->file_digest, VBFS_DIGEST_LEN);
}

static vbfs_err put_entry(struct build *b, size_t i)
{
	struct walk_entry *w = &b->w.v[i];
	struct vbfs_entry e;
	uint8_t key[8], stackbuf[4096], *rec = stackbuf;
	vbfs_err err;
	fill_entry(w, i ? b->w.v[w->parent].id : 0, &e);
	size_t n = vbfs_record_size(&e);
	if (n > sizeof stackbuf && !(rec = malloc(n)))
		return VBFS_ERR_NOMEM;
	vbfs_record_encode(&e, rec);
	idx_be64(key, w->id);
	err = put(b, b->db.inodes, key, 8, rec, n, "write entry");
	if (rec != stackbuf)
		free(rec);
	return err;
}

static vbfs_err put_dirent(struct build *b, size_t i)
{
	struct walk_entry *w = &b->w.v[i];
	const char *name = strrchr(w->path, '/');
	name = name ? name + 1 : w->path;
	size_t n = strlen(name);
	uint8_t key[8 + 256], val[8];
	if (n > 255) {
		snprintf(b->why, VBFS_WHY_LEN, "%s: name longer than 255 bytes", w->path);
		return VBFS_ERR_USAGE;
	}
	idx_be64(key, b->w.v[w->parent].id);
	memcpy(key + 8, name, n);
	idx_be64(val, w->id);
	return put(b, b->db.dirents, key, 8 + n, val, 8, "write directory entry");
}

/* Write the digests of blocks [first, first + n) of file w into its runs.
 * Pieces of one run arrive in any order: the run is read back (this
 * transaction's own write), the piece placed, and the run written again at
 * its final length; a file that fails has its runs deleted. */
static vbfs_err put_piece(struct build *b, const struct walk_entry *w, uint64_t first,
			  uint64_t n, const uint8_t *dig)
{
	uint8_t key[16], val[VBFS_RUN_BLOCKS * VBFS_DIGEST_LEN];
	vbfs_err err = VBFS_OK;
	idx_be64(key, w->id);
	while (n && !err) {
		uint64_t run = first / VBFS_RUN_BLOCKS, at = first % VBFS_RUN_BLOCKS;
		uint64_t run_len = w->nblocks - run * VBFS_RUN_BLOCKS;
		if (run_len > VBFS_RUN_BLOCKS)
			run_len = VBFS_RUN_BLOCKS;
		uint64_t take = run_len - at < n ? run_len - at : n;
		size_t vlen = (size_t)run_len * VBFS_DIGEST_LEN;
		MDB_val k = { 16, key }, v;
		idx_be64(key + 8, run);
		if (take < run_len && mdb_get(b->txn, b->db.blocks, &k, &v) == 0 && v.mv_size == vlen)
			memcpy(val, v.mv_data, vlen);
		else
			memset(val, 0, vlen);
		memcpy(val + at * VBFS_DIGEST_LEN, dig, (size_t)take * VBFS_DIGEST_LEN);
		err = put(b, b->db.blocks, key, 16, val, vlen, "write digests");
		first += take;
		dig += take * VBFS_DIGEST_LEN;
		n -= take;
	}
	return err;
}

/* A sparse file's hole maps: one bitmap per run that has a hole. */
static vbfs_err put_hole_maps(struct build *b, const struct walk_entry *w)
{
	uint8_t key[16];
	vbfs_err err = VBFS_OK;
	idx_be64(key, w->id);
	for (uint64_t run = 0; run * VBFS_RUN_BLOCKS < w->nblocks && !err; run++) {
		uint8_t map[IDX_HOLE_MAP] = { 0 };
		bool any = false;
		for (uint64_t i = 0; i < VBFS_RUN_BLOCKS && run * VBFS_RUN_BLOCKS + i < w->nblocks; i++)
			if (w->holes[run * VBFS_RUN_BLOCKS + i]) {
				map[i / 8] |= (uint8_t)(1u << (i % 8));
				any = true;
			}
		idx_be64(key + 8, run | IDX_HOLE_RUN);
		if (any)
			err = put(b, b->db.blocks, key, 16, map, sizeof map, "write hole map");
	}
	return err;
}

/* ---- 4. hashing ---------------------------------------------------------- */

/* Fewer bytes allocated than the size: there may be holes (the test
 * tar -S and cp use too).  A hole map for such a file, else NULL. */
static uint8_t *maybe_holes(const struct stat *st, uint64_t nblocks)
{
	if (!nblocks || (uint64_t)st->st_blocks * 512 >= (uint64_t)st->st_size)
		return NULL;
	return calloc(nblocks, 1);
}

/* Mark the blocks of [first, first+count) that lie wholly in a hole of the
 * store file.  A block partly data is data.  A filesystem that cannot
 * tell (lseek fails otherwise) leaves everything data. */
static void find_holes(int fd, struct walk_entry *w, uint64_t size, uint32_t bs,
		       uint64_t first, uint64_t count)
{
	uint64_t end = first + count, blk = first;
	while (blk < end) {
		off_t d = lseek(fd, (off_t)(blk * bs), SEEK_DATA);
		if (d < 0 && errno != ENXIO)
			return;
		if (d < 0 || (uint64_t)d >= size) {   /* no data up to the end */
			for (; blk < end; blk++)
				w->holes[blk] = 1;
			return;
		}
		for (; blk < end && (blk + 1) * bs <= (uint64_t)d; blk++)
			w->holes[blk] = 1;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return;
		uint64_t next = ((uint64_t)h + bs - 1) / bs;   /* first block starting at or after h */
		blk = next > blk ? next : blk + 1;
	}
}

/* Where a hashed piece goes: the ring (workers) or the index (writer). */
typedef int (*piece_fn)(struct build *b, struct piece *pc);

/* Worker: hand a piece to the writer, waiting while the ring is full.
 * Non-zero when the build is aborting (the piece is dropped). */
static int to_ring(struct build *b, struct piece *pc)
{
	pthread_mutex_lock(&b->lock);
	while (b->ring_n == RING_PIECES && !b->abort)
		pthread_cond_wait(&b->not_full, &b->lock);
	int stop = b->abort;
	if (!stop) {
		b->ring[(b->ring_head + b->ring_n) % RING_PIECES] = *pc;
		b->ring_n++;
		pthread_cond_signal(&b->cond);
	}
	pthread_mutex_unlock(&b->lock);
	return stop;
}

/* Writer (a re-hash): straight into the index. */
static int to_index(struct build *b, struct piece *pc)
{
	if (!pc->count || b->put_err)
		return b->put_err != VBFS_OK;
	b->put_err = put_piece(b, &b->w.v[pc->entry], pc->first, pc->count, pc->dig[0]);
	return b->put_err != VBFS_OK;
}

/* The same file, unchanged?  Any write, append, truncate, chmod, chown or
 * rename onto the path moves one of these. */
static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
	       a->st_uid == b->st_uid && a->st_gid == b->st_gid && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * A write stamps the file with the kernel's coarse clock: one landing in
 * the same tick as the file's last change leaves ctime as it was.  A file
 * whose ctime is that close to the start of its hash cannot be vouched for
 * by comparing stats; it is hashed again once the tick has passed.  A
 * ctime with no nanoseconds means a filesystem that keeps whole seconds.
 */
static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int64_t settle_ns(const struct build *b, const struct stat *st)
{
	return st->st_ctim.tv_nsec ? b->tick_ns : 1000000000 + b->tick_ns;
}

/* A ctime more than a second ahead of our clock was stamped by another
 * clock (an NFS server's): the tick argument does not apply, and waiting
 * for it could take as long as the clocks differ. */
#define FOREIGN_CLOCK_NS 1000000000

static bool racy(const struct build *b, const struct stat *st, struct timespec start)
{
	int64_t c = ns_of(st->st_ctim), s = ns_of(start);
	return c + settle_ns(b, st) > s && c <= s + FOREIGN_CLOCK_NS;
}

/* Sleep until the file's last change is a settle time in the past. */
static void settle(const struct build *b, const struct stat *st)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t left = ns_of(st->st_ctim) + settle_ns(b, st) - ns_of(now);
	if (left > 0 && left <= settle_ns(b, st) + FOREIGN_CLOCK_NS) {
		struct timespec d = { (time_t)(left / 1000000000), (long)(left % 1000000000) };
		nanosleep(&d, NULL);
	}
}

/* Several tasks of one file may fail: an errno outranks HASH_CHANGED,
 * which outranks HASH_RACY. */
static int failure_rank(int rc) { return rc > 0 ? 3 : rc == HASH_CHANGED ? 2 : rc == HASH_RACY; }

static void note_failure(struct walk_entry *w, int rc)
{
	int cur = atomic_load(&w->failed);
	while (failure_rank(rc) > failure_rank(cur) &&
	       !atomic_compare_exchange_weak(&w->failed, &cur, rc))
		;
}

/*
 * Hash blocks [first, first + count) of walk entry `entry` into pieces for
 * `sink`, the last one marked `end` (sent whatever happens).  The file
 * opened must be a regular file and the one `want` describes (device,
 * inode, type, mode, owner, size, mtime, ctime) before the first block and
 * after the last, so the digests, the size and the mode recorded all come
 * from one file.  With `adopt` (a re-hash), *want becomes the opened file's
 * stat and the whole file is hashed once its last change has settled.
 * Returns 0, HASH_CHANGED, HASH_RACY or an errno; `how` says what changed.
 */
static int hash_range(struct build *b, size_t entry, struct stat *want, bool adopt,
		      uint64_t first, uint64_t count, void *buf, piece_fn sink, const char **how)
{
	struct walk_entry *w = &b->w.v[entry];
	struct piece pc = { .entry = entry, .first = first };
	struct stat st;
	struct timespec start;
	EVP_MD_CTX *whole = NULL;
	const char *what = NULL;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &start);
	int fd = vbfs_store_open_reg(b->store_fd, w->path, &st);
	if (fd < 0) {
		int e = errno;
		rc = HASH_CHANGED;
		if (st.st_mode)
			what = "is no longer a regular file";
		else if (e == ENOENT)
			what = "vanished while the index was built";
		else if (e == ELOOP || e == ENOTDIR || e == EAGAIN)
			what = "was replaced while the index was built";
		else
			rc = e;
		goto out;
	}
	if (adopt) {
		*want = st;
		settle(b, want);
		clock_gettime(CLOCK_REALTIME, &start);
		w->nblocks = vbfs_nblocks((uint64_t)want->st_size, b->block_size);
		first = pc.first = 0;
		count = w->nblocks;
		free(w->holes);
		w->holes = maybe_holes(want, w->nblocks);
		atomic_store(&w->hole_bytes, 0);
	} else if (!same_file(&st, want)) {
		what = st.st_ino != want->st_ino || st.st_dev != want->st_dev
		       ? "was replaced while the index was built" : "changed while it was hashed";
		rc = HASH_CHANGED;
		goto out;
	}
	/* Whole-file SHA-256 (export, --against) rides the same read; then a
	 * task is the whole file, as the digest is sequential. */
	if (b->o->file_digests && (!(whole = EVP_MD_CTX_new()) ||
				   !EVP_DigestInit_ex(whole, EVP_sha256(), NULL))) {
		rc = ENOMEM;
		goto out;
	}
	if (w->holes)
		find_holes(fd, w, (uint64_t)want->st_size, b->block_size, first, count);
	for (uint64_t blk = first; blk < first + count; blk++) {
		size_t len = vbfs_block_len((uint64_t)want->st_size, b->block_size, blk);
		if (w->holes && w->holes[blk]) {
			/* A hole is not read: its digest is the zero block's.  (A
			 * write into it moves the mtime: the check after the loop.) */
			vbfs_zero_digest(len, pc.dig[pc.count++]);
			atomic_fetch_add(&w->hole_bytes, len);
			if (b->o->parity && !adopt)
				parity_plan_feed(b->o->parity, w->parity_file, blk, NULL, (uint32_t)len);
			if (whole) {
				memset(buf, 0, len);
				EVP_DigestUpdate(whole, buf, len);
			}
		} else {
			ssize_t got = vbfs_block_read(fd, buf, len, blk * b->block_size);
			if (got < 0 || (size_t)got < len) {
				rc = got < 0 ? errno : HASH_CHANGED;
				what = "shrank while it was hashed";
				goto out;
			}
			unsigned int dl = VBFS_DIGEST_LEN;
			EVP_Digest(buf, len, pc.dig[pc.count++], &dl, EVP_sha256(), NULL);
			/* Parity from the bytes just hashed: no second read.  (A
			 * re-hash, `adopt`, is not fed: its file was spoiled.) */
			if (b->o->parity && !adopt)
				parity_plan_feed(b->o->parity, w->parity_file, blk, buf, (uint32_t)len);
			if (whole)
				EVP_DigestUpdate(whole, buf, len);
		}
		if (pc.count == CHUNK_BLOCKS && blk + 1 < first + count) {
			if (sink(b, &pc)) {
				rc = ECANCELED;
				goto out;
			}
			pc.first += pc.count;
			pc.count = 0;
		}
		if (b->abort) {
			rc = ECANCELED;
			goto out;
		}
	}
	if (fstat(fd, &st) < 0) {
		rc = errno;
	} else if (!same_file(&st, want)) {
		rc = HASH_CHANGED;
		what = "changed while it was hashed";
	} else if (racy(b, &st, start)) {
		rc = HASH_RACY;
		what = "changed just before it was hashed";
	}
	if (!rc && whole)
		EVP_DigestFinal_ex(whole, w->file_digest, NULL);
out:
	EVP_MD_CTX_free(whole);
	if (fd >= 0)
		close(fd);
	if (how && what)
		*how = what;
	if (rc)
		note_failure(w, rc);
	pc.end = true;
	sink(b, &pc);
	return rc;
}

/* The tasks of a file: chunks of CHUNK_BLOCKS, or the whole file for a
 * whole-file digest; an empty file has one (its open is still checked). */
static uint64_t task_blocks(const struct build *b, const struct walk_entry *w)
{
	return b->o->file_digests ? (w->nblocks ? w->nblocks : 1) : CHUNK_BLOCKS;
}

static uint64_t task_count(const struct build *b, const struct walk_entry *w)
{
	uint64_t per = task_blocks(b, w);
	return w->nblocks ? (w->nblocks + per - 1) / per : 1;
}

static void hash_task(void *ctx, size_t t, void *buf)
{
	struct build *b = ctx;
	size_t lo = 0, hi = b->nhashed - 1;
	while (lo < hi) {   /* the first file whose tasks end after t */
		size_t mid = lo + (hi - lo) / 2;
		if (b->task_end[mid] > t)
			hi = mid;
		else
			lo = mid + 1;
	}
	struct walk_entry *w = &b->w.v[b->hashed[lo]];
	uint64_t per = task_blocks(b, w);
	uint64_t first = (t - (lo ? b->task_end[lo - 1] : 0)) * per;
	uint64_t count = w->nblocks > first ? w->nblocks - first : 0;
	hash_range(b, b->hashed[lo], &w->st, false, first, count < per ? count : per, buf,
		   to_ring, NULL);
}

/* ---- --against ----------------------------------------------------------- */

static void against_check(struct build *b, struct walk_entry *w)
{
	struct vbfs_manifest_file *mf = vbfs_manifest_find(b->against, w->path, strlen(w->path));
	struct vbfs_event ev = { .path = w->path, .path_len = strlen(w->path), .block = -1 };
	if (!mf) {
		b->r->against_unlisted++;
		ev.kind = VBFS_EV_UNLISTED;
		ev.detail = "not in the backup-time manifest; indexed as it is";
		emit(b, &ev);
		return;
	}
	mf->seen = true;
	b->r->against_listed++;
	if (!mf->checkable) {
		b->r->against_uncheckable++;
		ev.kind = VBFS_EV_UNCHECKABLE;
		ev.detail = mf->algorithm;
		emit(b, &ev);
		if (mf->size < 0 || mf->size == (int64_t)w->st.st_size)
			return;
	}
	bool size_ok = mf->size < 0 || mf->size == (int64_t)w->st.st_size;
	bool digest_ok = !mf->checkable || !memcmp(mf->sha256, w->file_digest, VBFS_DIGEST_LEN);
	if (size_ok && digest_ok)
		return;
	b->r->against_mismatched++;
	w->flags |= VBFS_F_DAMAGED;
	ev.kind = VBFS_EV_CORRUPT;
	ev.has_expected = mf->checkable;
	memcpy(ev.expected, mf->sha256, VBFS_DIGEST_LEN);
	ev.has_actual = true;
	memcpy(ev.actual, w->file_digest, VBFS_DIGEST_LEN);
	ev.detail = !size_ok ? "size differs from the backup-time manifest"
			     : "whole-file SHA-256 differs from the backup-time manifest";
	emit(b, &ev);
}

/* ---- the build ------------------------------------------------------------ */

/* Write file i's record.  `failed`: 0 (its digests are in), an errno (it
 * could not be read) or HASH_CHANGED (it never held still: `how`).  Never
 * record digests we could not stand behind: such a file keeps none, is
 * marked unreadable, and every read of it through the mount fails. */
static vbfs_err record_file(struct build *b, size_t i, int failed, const char *how)
{
	struct walk_entry *w = &b->w.v[i];
	vbfs_err err;
	if (failed) {
		char detail[160];
		struct vbfs_event ev = { .kind = VBFS_EV_UNREADABLE, .path = w->path,
			.path_len = strlen(w->path), .block = -1, .detail = detail };
		if (failed < 0) {
			snprintf(detail, sizeof detail, "%s (hashed %d times): changed while "
				 "indexing, no digests recorded", how, 1 + REHASH_MAX);
			ev.kind = VBFS_EV_CHANGED;
			w->flags = VBFS_F_UNREADABLE | VBFS_F_CHANGED;
			b->r->files_changed++;
		} else {
			snprintf(detail, sizeof detail, "%s", strerror(failed));
			w->flags = VBFS_F_UNREADABLE;
			b->r->files_unreadable++;
		}
		w->nblocks = 0;
		if ((err = delete_runs(b, w->id)))
			return err;
		emit(b, &ev);
	} else {
		uint64_t holes = atomic_load(&w->hole_bytes);
		if (b->o->file_digests)
			w->flags |= VBFS_F_FILE_DIGEST;
		if (holes && (err = put_hole_maps(b, w)))
			return err;
		if (holes)
			w->flags |= VBFS_F_HOLES;
		if (b->against)
			against_check(b, w);
		b->r->files_hashed++;
		b->r->bytes_hashed += (uint64_t)w->st.st_size - holes;
		b->r->bytes_holes += holes;
	}
	free(w->holes);
	w->holes = NULL;
	return put_entry(b, i);
}

/* After hashing: each follower takes its holder's flags and whole-file
 * digest and names the holder's id; digests it held before go. */
static vbfs_err write_followers(struct build *b)
{
	vbfs_err err;
	for (size_t i = 0; i < b->w.n; i++) {
		struct walk_entry *w = &b->w.v[i];
		if (!w->follower)
			continue;
		const struct walk_entry *h = &b->w.v[w->link_to];
		w->link_id = h->id;
		w->flags = h->flags & (VBFS_F_FILE_DIGEST | VBFS_F_HOLES | VBFS_F_UNREADABLE);
		memcpy(w->file_digest, h->file_digest, VBFS_DIGEST_LEN);
		if (b->against && !(h->flags & VBFS_F_UNREADABLE))
			against_check(b, w);
		if (w->has_old && (err = delete_runs(b, w->id)))
			return err;
		if ((err = put_entry(b, i)))
			return err;
	}
	return VBFS_OK;
}

/* Writer: every task of file i has reported.  A file that changed is
 * hashed again after the pool (rehash); the rest are recorded now. */
static vbfs_err finish_file(struct build *b, size_t i)
{
	struct walk_entry *w = &b->w.v[i];
	int failed = atomic_load(&w->failed);
	if (failed && b->o->parity)   /* its bytes fed may not be the ones indexed */
		parity_plan_spoil(b->o->parity, w->parity_file);
	if (failed == HASH_CHANGED || failed == HASH_RACY) {
		b->retry[b->nretry++] = i;
		return delete_runs(b, w->id);
	}
	return record_file(b, i, failed, NULL);
}

/* Files that changed while the pool hashed them: hashed again, one at a
 * time on this thread, each time taking what it then is (a file renamed
 * onto the path is recorded with its own mode and owner), up to
 * REHASH_MAX times; one that never holds still keeps no digests. */
static vbfs_err rehash(struct build *b)
{
	void *buf = b->nretry ? vbfs_block_buf(b->block_size) : NULL;
	vbfs_err err = VBFS_OK;
	if (b->nretry && !buf)
		return VBFS_ERR_NOMEM;
	for (size_t r = 0; r < b->nretry && !err; r++) {
		size_t i = b->retry[r];
		struct walk_entry *w = &b->w.v[i];
		const char *how = "changed while it was hashed";
		int rc = atomic_load(&w->failed);
		for (int n = 0; n < REHASH_MAX && (rc == HASH_CHANGED || rc == HASH_RACY); n++) {
			struct stat st;
			if (b->o->stop && *b->o->stop) {
				err = VBFS_ERR_INTERRUPTED;
				break;
			}
			if ((err = delete_runs(b, w->id)))
				break;
			atomic_store(&w->failed, 0);
			rc = hash_range(b, i, &st, true, 0, 0, buf, to_index, &how);
			if ((err = b->put_err))
				break;
			if (rc == 0) {
				w->st = st;
				b->r->files_rehashed++;
			}
		}
		if (!err)
			err = record_file(b, i, rc == HASH_RACY ? HASH_CHANGED : rc, how);
	}
	free(buf);
	return err;
}

static void report_progress(struct build *b, uint64_t total_bytes)
{
	if (!b->o->progress)
		return;
	struct vbfs_progress p = { .bytes_done = b->bytes_done, .bytes_total = total_bytes,
				   .files_done = b->files_done, .files_total = b->nhashed };
	b->o->progress(b->o->progress_ctx, &p);
}

/* Writer: one piece from the ring into the index. */
static vbfs_err consume(struct build *b, const struct piece *pc)
{
	struct walk_entry *w = &b->w.v[pc->entry];
	vbfs_err err = VBFS_OK;
	uint64_t size = (uint64_t)w->st.st_size, from = pc->first * b->block_size;
	uint64_t to = (pc->first + pc->count) * b->block_size;
	if (pc->count && !atomic_load(&w->failed))
		err = put_piece(b, w, pc->first, pc->count, pc->dig[0]);
	b->bytes_done += (to < size ? to : size) - (from < size ? from : size);
	if (!err && pc->end && --w->tasks_left == 0) {
		b->files_done++;
		err = finish_file(b, pc->entry);
	}
	return err;
}

/*
 * An index maps at most IDX_MAPSIZE: refuse up front, with the block size
 * that would fit, a store whose digests cannot fit in half of it (a 1 EiB
 * sparse file at 1 MiB blocks needs 32 TiB of them).
 */
static vbfs_err check_capacity(struct build *b)
{
	const uint64_t limit = IDX_MAPSIZE / 2;
	size_t biggest = 0;
	uint32_t fits = 0;
	for (size_t i = 0; i < b->w.n; i++)
		if (S_ISREG(b->w.v[i].st.st_mode) && b->w.v[i].st.st_size > b->w.v[biggest].st.st_size)
			biggest = i;
	for (uint64_t bs = b->block_size; bs <= VBFS_BLOCK_MAX && !fits; bs *= 2) {
		uint64_t need = 0;
		for (size_t i = 0; i < b->w.n && need <= limit; i++)
			if (S_ISREG(b->w.v[i].st.st_mode))
				need += vbfs_nblocks((uint64_t)b->w.v[i].st.st_size, (uint32_t)bs) *
					VBFS_DIGEST_LEN;
		if (need <= limit)
			fits = (uint32_t)bs;
	}
	if (fits == b->block_size)
		return VBFS_OK;
	char advice[64] = "it is too large for any block size";
	if (fits)
		snprintf(advice, sizeof advice, "index it with --block-size %u%c or larger",
			 fits >= (1u << 20) ? fits >> 20 : fits >> 10, fits >= (1u << 20) ? 'M' : 'K');
	snprintf(b->why, VBFS_WHY_LEN, "%s: %llu bytes: at %u KiB blocks the store's digests "
		 "would not fit in an index (at most %llu GiB of them); %s",
		 b->w.v[biggest].path, (unsigned long long)b->w.v[biggest].st.st_size,
		 b->block_size >> 10, (unsigned long long)(limit >> 30), advice);
	return VBFS_ERR_USAGE;
}

/* Number the tasks: per file, a count and a running end (see struct build). */
static vbfs_err plan_tasks(struct build *b, uint64_t *total)
{
	vbfs_err err;
	*total = 0;
	for (size_t i = 0; i < b->w.n; i++)
		b->nhashed += S_ISREG(b->w.v[i].st.st_mode) && !b->w.v[i].reused &&
			      !b->w.v[i].follower;
	b->hashed = malloc((b->nhashed + 1) * sizeof *b->hashed);
	b->task_end = malloc((b->nhashed + 1) * sizeof *b->task_end);
	b->retry = malloc((b->nhashed + 1) * sizeof *b->retry);
	b->ring = malloc(RING_PIECES * sizeof *b->ring);
	if (!b->hashed || !b->task_end || !b->retry || !b->ring)
		return VBFS_ERR_NOMEM;
	size_t k = 0;
	for (size_t i = 0; i < b->w.n; i++) {
		struct walk_entry *w = &b->w.v[i];
		if (!S_ISREG(w->st.st_mode) || w->reused || w->follower)
			continue;
		w->nblocks = vbfs_nblocks((uint64_t)w->st.st_size, b->block_size);
		w->tasks_left = task_count(b, w);
		if (w->nblocks && (uint64_t)w->st.st_blocks * 512 < (uint64_t)w->st.st_size &&
		    !(w->holes = maybe_holes(&w->st, w->nblocks)))
			return VBFS_ERR_NOMEM;
		atomic_init(&w->failed, 0);
		b->ntasks += w->tasks_left;
		b->hashed[k] = i;
		b->task_end[k++] = b->ntasks;
		*total += (uint64_t)w->st.st_size;
		/* The old digests go now: the new ones are written as made. */
		if (w->has_old && (err = delete_runs(b, w->id)))
			return err;
	}
	return VBFS_OK;
}

static vbfs_err hash_and_write(struct build *b)
{
	struct timespec tick;
	uint64_t total;
	struct pool pool;
	vbfs_err err;

	if ((err = check_capacity(b)) || (err = plan_tasks(b, &total)))
		return err;
	clock_getres(CLOCK_REALTIME_COARSE, &tick);
	b->tick_ns = 2 * ns_of(tick);
	if (b->ntasks && pool_start(&pool, b->o->jobs, b->ntasks, b->block_size, hash_task, b, &b->abort)) {
		snprintf(b->why, VBFS_WHY_LEN, "cannot start hashing threads");
		return VBFS_ERR_NOMEM;
	}
	/* Pieces into the index as they come; LMDB writes stay on this thread. */
	while (b->files_done < b->nhashed) {
		struct piece pc;
		bool stopped = false;
		pthread_mutex_lock(&b->lock);
		while (!b->ring_n && !(stopped = b->o->stop && *b->o->stop)) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000000;
			if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
			pthread_cond_timedwait(&b->cond, &b->lock, &until);
			pthread_mutex_unlock(&b->lock);
			report_progress(b, total);
			pthread_mutex_lock(&b->lock);
		}
		if (!stopped) {
			pc = b->ring[b->ring_head];
			b->ring_head = (b->ring_head + 1) % RING_PIECES;
			b->ring_n--;
			pthread_cond_signal(&b->not_full);
		}
		pthread_mutex_unlock(&b->lock);
		if (stopped) {
			err = VBFS_ERR_INTERRUPTED;
			break;
		}
		if ((err = consume(b, &pc)))
			break;
		report_progress(b, total);
	}
	if (b->ntasks) {
		pthread_mutex_lock(&b->lock);
		if (err)
			b->abort = 1;
		pthread_cond_broadcast(&b->not_full);
		pthread_mutex_unlock(&b->lock);
		pool_join(&pool);
	}
	return err ? err : rehash(b);
}

/* Prepare the index directory: create it 0700, or check it is an index
 * (never turn somebody's non-empty directory into one). */
static vbfs_err prepare_dir(const char *dir, char *why)
{
	struct stat st;
	if (stat(dir, &st) < 0) {
		if (errno != ENOENT)
			return io_err(why, "index", dir);
		if (mkdir(dir, 0700) < 0)
			return io_err(why, "create index directory", dir);
		return VBFS_OK;
	}
	if (!S_ISDIR(st.st_mode)) {
		vbfs_whyf(why, "%s: not a directory (an index is a directory)", dir);
		return VBFS_ERR_NOTINDEX;
	}
	char data[4096];
	snprintf(data, sizeof data, "%s/data.mdb", dir);
	if (stat(data, &st) == 0)
		return VBFS_OK;
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return io_err(why, "index", dir);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			vbfs_whyf(why, "%s: not a vbfs index and not empty "
				 "(refusing to write into it)", dir);
			return VBFS_ERR_NOTINDEX;
		}
	closedir(d);
	return VBFS_OK;
}

/* The index must live apart from the store ("keep checksums separate"):
 * inside it, the build would index its own LMDB files and every later
 * scrub would call them damaged. */
static vbfs_err check_apart(const char *store, const char *index, char *why)
{
	char *s = realpath(store, NULL), *i = realpath(index, NULL);
	vbfs_err err = VBFS_OK;
	if (!i) {   /* not created yet: its parent decides */
		char *copy = strdup(index), *copy2 = strdup(index);
		char *parent = copy ? realpath(dirname(copy), NULL) : NULL;
		if (parent && copy2) {
			const char *base = basename(copy2);
			i = malloc(strlen(parent) + strlen(base) + 2);
			if (i)
				sprintf(i, "%s/%s", parent, base);
		}
		free(parent);
		free(copy);
		free(copy2);
	}
	if (s && i) {
		size_t n = strlen(s);
		if (!strcmp(s, i) || (!strncmp(s, i, n) && (i[n] == '/' || !strcmp(s, "/")))) {
			vbfs_whyf(why, "index %s is inside the store %s: keep the "
				 "index apart from the store", index, store);
			err = VBFS_ERR_USAGE;
		}
	}
	free(s);
	free(i);
	return err;
}

static vbfs_err open_env(struct build *b)
{
	int rc;
	if ((rc = mdb_env_create(&b->env)))
		return idx_lmdb_err(rc, "create LMDB environment", b->why);
	mdb_env_set_maxdbs(b->env, 8);
	mdb_env_set_mapsize(b->env, IDX_MAPSIZE);
	rc = mdb_env_open(b->env, b->o->index, MDB_NOTLS, 0600);
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED) {
		snprintf(b->why, VBFS_WHY_LEN, "%s: not a vbfs index (data.mdb is not an LMDB "
			 "database: %s)", b->o->index, mdb_strerror(rc));
		return VBFS_ERR_NOTINDEX;
	}
	if (rc) {
		snprintf(b->why, VBFS_WHY_LEN, "%s: cannot open index: %s", b->o->index, mdb_strerror(rc));
		return VBFS_ERR_LMDB;
	}
	return idx_check_size(b->env, b->o->index, b->why);
}

/* Whether the recorded store_ino numbers are unique per store inode, so
 * the mount may show them (vbfs_entry_st_ino): every entry on the store
 * root's device, none with st_ino 0.  A mount point inside the store puts
 * entries on another device, where the same numbers mean other inodes. */
static bool store_inodes_unique(const struct build *b)
{
	for (size_t i = 0; i < b->w.n; i++)
		if (b->w.v[i].st.st_dev != b->w.v[0].st.st_dev || b->w.v[i].st.st_ino == 0)
			return false;
	return b->w.n > 0;
}

static vbfs_err write_meta(struct build *b, const struct vbfs_meta *old, bool had_old,
			   uint64_t next_id)
{
	uint64_t files = 0, blocks = 0, bytes = 0;
	vbfs_err err;
	for (size_t i = 0; i < b->w.n; i++)
		if (S_ISREG(b->w.v[i].st.st_mode)) {
			files++;
			bytes += (uint64_t)b->w.v[i].st.st_size;
			blocks += vbfs_nblocks((uint64_t)b->w.v[i].st.st_size, b->block_size);
		}
	char idbuf[256];
	const char *backup_id = b->o->backup_id;
	if (!backup_id && had_old && old->backup_id[0])
		backup_id = old->backup_id;
	if (!backup_id) {
		char *copy = strdup(b->o->store), *base;
		if (!copy) return VBFS_ERR_NOMEM;
		size_t n = strlen(copy);
		while (n > 1 && copy[n - 1] == '/') copy[--n] = '\0';
		base = basename(copy);
		snprintf(idbuf, sizeof idbuf, "%s", base);
		free(copy);
		backup_id = idbuf;
	}
	if (strlen(backup_id) >= sizeof old->backup_id) {
		snprintf(b->why, VBFS_WHY_LEN, "backup id longer than 255 bytes");
		return VBFS_ERR_USAGE;
	}
	int64_t now = vbfs_now();
	if ((err = put_u64(b, "format_version", VBFS_FORMAT_VERSION)) ||
	    (err = put_str(b, "hash", "sha256")) ||
	    (err = put_u64(b, "block_size", b->block_size)) ||
	    (err = put_str(b, "backup_id", backup_id)) ||
	    (err = put_u64(b, "created", (uint64_t)(had_old && old->created ? old->created : now))) ||
	    (err = put_u64(b, "updated", (uint64_t)now)) ||
	    (err = put_u64(b, "entries", b->w.n)) ||
	    (err = put_u64(b, "files", files)) ||
	    (err = put_u64(b, "blocks", blocks)) ||
	    (err = put_u64(b, "bytes", bytes)) ||
	    (err = put_u64(b, "next_id", next_id)) ||
	    (err = put_u64(b, "store_inodes", store_inodes_unique(b))))
		return err;
	return VBFS_OK;
}

static vbfs_err seal(struct build *b)
{
	uint8_t root[VBFS_DIGEST_LEN], sig[64];
	vbfs_err err;
	MDB_val k = { strlen(IDX_META_SIG), (void *)IDX_META_SIG };
	if ((err = idx_root_digest(b->txn, &b->db, false, root, b->why)))
		return err;
	if ((err = put(b, b->db.meta, IDX_META_ROOT, strlen(IDX_META_ROOT), root,
		       VBFS_DIGEST_LEN, "write root digest")))
		return err;
	if (!b->o->sign_key) {
		/* A signature over an older root would be a lie now. */
		int rc = mdb_del(b->txn, b->db.meta, &k, NULL);
		return rc && rc != MDB_NOTFOUND ? idx_lmdb_err(rc, "drop signature", b->why) : VBFS_OK;
	}
	if ((err = idx_sign(b->o->sign_key, root, sig, b->why)))
		return err;
	return put(b, b->db.meta, IDX_META_SIG, strlen(IDX_META_SIG), sig, 64, "write signature");
}

/* --reuse OLD_INDEX: never the index being written (LMDB: one environment
 * open once per process; and an index is incremental by itself). */
static vbfs_err open_reuse(const struct vbfs_build_opts *o, struct reuse **out, char *why)
{
	char *a = realpath(o->reuse, NULL), *i = realpath(o->index, NULL);
	bool same = a && i && !strcmp(a, i);
	free(a);
	free(i);
	if (same) {
		vbfs_whyf(why, "--reuse %s: is the index being built (a rebuild "
			 "of an index reuses its own digests already)", o->reuse);
		return VBFS_ERR_USAGE;
	}
	vbfs_err err = reuse_open(o->reuse, out, why);
	if (err || !o->sign_key)
		return err;
	const struct vbfs_meta *m = reuse_meta(*out);
	if (!m->signed_ || idx_signed_by_secret(o->sign_key, m->root_digest, m->signature, why)) {
		vbfs_whyf(why, "--reuse %s: not signed by the key this index is signed with "
			 "(its digests would be signed unchecked; build without --reuse once)",
			 o->reuse);
		reuse_close(*out);
		*out = NULL;
		return VBFS_ERR_SIGNATURE;
	}
	return VBFS_OK;
}

/* A file found unchanged in OLD_INDEX: its digests (and hole map) are
 * copied, replacing any this index held for the path. */
static vbfs_err copy_reused(struct build *b, struct walk_entry *w)
{
	vbfs_err err;
	if (w->has_old && (err = delete_runs(b, w->id)))
		return err;
	return reuse_copy(b->reuse, w->reuse_from, b->txn, b->db.blocks, w->id, b->why);
}

/* --parity: the files whose blocks the parity covers, in walk order, and
 * which of them this build reads (their groups are encoded inline). */
static vbfs_err plan_parity(struct build *b)
{
	vbfs_err err;
	parity_plan_begin(b->o->parity, b->block_size);
	for (size_t i = 0; i < b->w.n; i++) {
		struct walk_entry *w = &b->w.v[i];
		w->parity_file = -1;
		if (S_ISREG(w->st.st_mode) && !w->follower && w->st.st_size > 0 &&
		    (err = parity_plan_add(b->o->parity, w->id, (uint64_t)w->st.st_size, w->path,
					   !w->reused, &w->parity_file)))
			return err;
	}
	return parity_plan_layout(b->o->parity, b->why);
}

static int cmp_u64(const void *a, const void *c)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)c;
	return x < y ? -1 : x > y;
}

/* Drop dirents; drop inodes and runs of ids no longer in the store. */
static vbfs_err drop_removed(struct build *b)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;
	uint64_t *keep;
	size_t nkeep = 0;
	vbfs_err err = VBFS_OK;

	if ((rc = mdb_drop(b->txn, b->db.dirents, 0)))
		return idx_lmdb_err(rc, "clear directory entries", b->why);
	keep = malloc((b->w.n + 1) * sizeof *keep);
	if (!keep)
		return VBFS_ERR_NOMEM;
	for (size_t i = 0; i < b->w.n; i++)
		keep[nkeep++] = b->w.v[i].id;
	/* Reused ids come in tree order, not id order: sort for bsearch. */
	qsort(keep, nkeep, sizeof *keep, cmp_u64);
	if ((rc = mdb_cursor_open(b->txn, b->db.inodes, &cur))) {
		free(keep);
		return idx_lmdb_err(rc, "open cursor", b->why);
	}
	uint64_t *gone = NULL;
	size_t ngone = 0, capgone = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			continue;
		uint64_t id = idx_get_be64(k.mv_data);
		if (bsearch(&id, keep, nkeep, sizeof *keep, cmp_u64))
			continue;
		uint64_t *g = vbfs_grow(gone, &capgone, ngone, sizeof *g, 256);
		if (!g) { err = VBFS_ERR_NOMEM; break; }
		gone = g;
		gone[ngone++] = id;
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < ngone && !err; i++) {
		uint8_t key[8];
		idx_be64(key, gone[i]);
		MDB_val dk = { 8, key };
		struct vbfs_entry old;
		MDB_val ov;
		if (mdb_get(b->txn, b->db.inodes, &dk, &ov) == 0 &&
		    vbfs_record_decode(ov.mv_data, ov.mv_size, &old) == VBFS_OK &&
		    old.type == VBFS_T_REG && old.id != VBFS_ROOT_ID)
			b->r->files_removed++;
		if ((rc = mdb_del(b->txn, b->db.inodes, &dk, NULL)))
			err = idx_lmdb_err(rc, "delete entry", b->why);
		else
			err = delete_runs(b, gone[i]);
	}
	free(gone);
	free(keep);
	return err;
}

static void free_walk(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].path);
		free(w->v[i].target);
		free(w->v[i].holes);
	}
	free(w->v);
}

vbfs_err vbfs_build(const struct vbfs_build_opts *o, struct vbfs_build_result *r,
		    char why[VBFS_WHY_LEN])
{
	struct build b = { .o = o, .r = r, .why = why, .store_fd = -1 };
	struct vbfs_meta old = { 0 };
	bool had_old = false, created_dir = false, old_vouched = false;
	uint64_t next_id = VBFS_ROOT_ID + 1;
	double start = vbfs_monotonic();
	vbfs_err err;
	int rc;

	memset(r, 0, sizeof *r);
	why[0] = '\0';
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	pthread_cond_init(&b.not_full, NULL);
	if (o->block_size && (o->block_size < VBFS_BLOCK_MIN || o->block_size > VBFS_BLOCK_MAX ||
			      (o->block_size & (o->block_size - 1)))) {
		vbfs_whyf(why, "block size %u: must be a power of two from 4K to 64M",
			 o->block_size);
		err = VBFS_ERR_USAGE;
		goto out;
	}
	if ((b.store_fd = vbfs_store_open_root(o->store)) < 0) {
		err = io_err(why, "store", o->store);
		goto out;
	}
	if (o->against && (err = vbfs_manifest_load(o->against, &b.against, why)))
		goto out;
	if (o->sign_key && (err = idx_check_secret_key(o->sign_key, why)))
		goto out;   /* before anything is created: a refused build leaves nothing */
	if ((err = check_apart(o->store, o->index, why)))
		goto out;
	if (o->reuse && !o->full && !o->against && (err = open_reuse(o, &b.reuse, why)))
		goto out;
	{
		struct stat ist;
		created_dir = stat(o->index, &ist) < 0 && errno == ENOENT;
	}
	if ((err = prepare_dir(o->index, why)) || (err = idx_probe_in_place(o->index, why)) ||
	    (err = open_env(&b)))
		goto out;
	/* In place: files that moved (a rotated snapshot tree) or gained a
	 * path keep their digests by inode, as with --reuse. */
	if (!b.reuse && !o->full && !o->against && (err = reuse_open_in_place(b.env, &b.reuse)))
		goto out;
	if ((rc = mdb_txn_begin(b.env, NULL, 0, &b.txn))) {
		err = idx_lmdb_err(rc, "begin write transaction", why);
		goto out;
	}
	if ((err = idx_open_dbs(b.txn, true, &b.db, why)))
		goto out;
	{
		MDB_val k = { strlen("format_version"), "format_version" }, v;
		if (mdb_get(b.txn, b.db.meta, &k, &v) == 0) {
			if ((err = idx_read_meta(b.txn, &b.db, &old, why)) && err != VBFS_ERR_ROOT)
				goto out;
			/* A damaged old root is what a rebuild mends, by hashing
			 * everything: digests kept from it (then signed) would
			 * launder whatever a writer of the index put there. */
			char ignored[VBFS_WHY_LEN];
			uint8_t root[VBFS_DIGEST_LEN];
			bool root_holds = o->full || o->against ? false   /* nothing is kept */
				: !o->reuse ? b.reuse != NULL   /* reuse_open_in_place checked it */
				: !idx_root_digest(b.txn, &b.db, false, root, ignored) &&
				  !memcmp(root, old.root_digest, VBFS_DIGEST_LEN);
			old_vouched = err == VBFS_OK && root_holds &&
				(!o->sign_key || (old.signed_ &&
				  !idx_signed_by_secret(o->sign_key, old.root_digest, old.signature, ignored)));
			err = VBFS_OK;
			had_old = true;
			if (old.next_id > next_id)
				next_id = old.next_id;
		}
	}
	b.block_size = o->block_size ? o->block_size : had_old ? old.block_size
		     : b.reuse ? reuse_block_size(b.reuse) : VBFS_BLOCK_DEFAULT;
	if (b.reuse && !o->reuse && (reuse_block_size(b.reuse) != b.block_size || !old_vouched)) {
		reuse_close(b.reuse);   /* in place, a new block size: everything is hashed */
		b.reuse = NULL;
	}
	if (b.reuse && reuse_block_size(b.reuse) != b.block_size) {
		vbfs_whyf(why, "--reuse %s: its blocks are %u bytes, this index's %u "
			 "(digests of other blocks cannot be reused)", o->reuse,
			 reuse_block_size(b.reuse), b.block_size);
		err = VBFS_ERR_USAGE;
		goto out;
	}

	/* 1. walk */
	struct walk_entry *root = walk_push(&b.w);
	if (!root || !(root->path = strdup(""))) { err = VBFS_ERR_NOMEM; goto out; }
	if (fstat(b.store_fd, &root->st) < 0) { err = io_err(why, "stat store", o->store); goto out; }
	{
		int dfd = dup(b.store_fd);
		if (dfd < 0) { err = io_err(why, "store", o->store); goto out; }
		if ((err = walk_dir(&b, 0, dfd)))
			goto out;
	}
	r->entries = b.w.n;

	/* 2. ids, hard links, reuse */
	if ((err = group_links(&b)))
		goto out;
	assign_ids(&b, &next_id, had_old && old_vouched && old.block_size == b.block_size);
	for (size_t i = 0; i < b.w.n; i++) {
		struct walk_entry *w = &b.w.v[i];
		w->reused = w->reused && !w->follower;
		if (w->reused) {
			r->files_reused++;
			r->bytes_reused += (uint64_t)w->st.st_size;
			w->flags = w->old_flags & (VBFS_F_FILE_DIGEST | VBFS_F_HOLES);
			memcpy(w->file_digest, w->old_digest, VBFS_DIGEST_LEN);
		} else if (b.reuse && S_ISREG(w->st.st_mode) && !w->follower &&
			   (w->reuse_from = reuse_find(b.reuse, &w->st, w->path, o->file_digests))) {
			w->reused = true;
			r->files_reused++;
			r->bytes_reused += (uint64_t)w->st.st_size;
			w->flags = w->reuse_from->flags & (VBFS_F_FILE_DIGEST | VBFS_F_HOLES);
			memcpy(w->file_digest, w->reuse_from->file_digest, VBFS_DIGEST_LEN);
		}
	}
	/* A manifest made by following symlinks (the seed's rglob does) lists
	 * a symlink as a file: it is present, and never followed here. */
	for (size_t i = 1; b.against && i < b.w.n; i++) {
		struct walk_entry *w = &b.w.v[i];
		struct vbfs_manifest_file *mf;
		if (S_ISREG(w->st.st_mode) ||
		    !(mf = vbfs_manifest_find(b.against, w->path, strlen(w->path))))
			continue;
		mf->seen = true;
		struct vbfs_event ev = { .kind = VBFS_EV_UNCHECKABLE, .path = w->path,
			.path_len = strlen(w->path), .block = -1,
			.detail = "listed in the manifest but not a regular file in the store "
				  "(a symlink is not followed; its target is checked as itself)" };
		emit(&b, &ev);
	}
	if (o->parity && (err = plan_parity(&b)))
		goto out;
	/* 3. removed entries; directory entries are rewritten */
	if ((err = drop_removed(&b)))
		goto out;
	for (size_t i = 0; i < b.w.n; i++) {
		if (i && (err = put_dirent(&b, i)))
			goto out;
		if (b.w.v[i].reuse_from && (err = copy_reused(&b, &b.w.v[i])))
			goto out;
		if ((!S_ISREG(b.w.v[i].st.st_mode) || b.w.v[i].reused) && !b.w.v[i].follower &&
		    (err = put_entry(&b, i)))
			goto out;
	}
	/* 4. hash */
	if ((err = hash_and_write(&b)) || (err = write_followers(&b)))
		goto out;
	if (b.against) {
		for (size_t i = 0; i < b.against->nfiles; i++) {
			struct vbfs_manifest_file *mf = &b.against->files[i];
			if (mf->seen)
				continue;
			r->against_missing++;
			struct vbfs_event ev = { .kind = VBFS_EV_MISSING, .path = mf->path,
				.path_len = strlen(mf->path), .block = -1,
				.detail = "listed in the backup-time manifest, absent from the store" };
			emit(&b, &ev);
		}
	}
	/* 5. meta, root, signature, commit */
	if ((err = write_meta(&b, &old, had_old, next_id)) || (err = seal(&b)))
		goto out;
	if (o->stop && *o->stop) {
		err = VBFS_ERR_INTERRUPTED;
		goto out;
	}
	rc = mdb_txn_commit(b.txn);
	b.txn = NULL;
	if (rc) {
		err = idx_lmdb_err(rc, "commit index", why);
		goto out;
	}
out:
	if (err == VBFS_ERR_INTERRUPTED && !why[0])
		vbfs_whyf(why, "interrupted: the previous index is unchanged");
	if (b.txn)
		mdb_txn_abort(b.txn);   /* nothing of this build is written */
	reuse_close(b.reuse);   /* in place: its read transaction, before the environment */
	b.reuse = NULL;
	if (b.env)
		mdb_env_close(b.env);
	if (err && created_dir) {
		/* This build made the directory: leave no empty index behind. */
		char f[4096];
		snprintf(f, sizeof f, "%s/data.mdb", o->index);
		unlink(f);
		snprintf(f, sizeof f, "%s/lock.mdb", o->index);
		unlink(f);
		rmdir(o->index);
	}
	if (b.store_fd >= 0)
		close(b.store_fd);
	vbfs_manifest_free(b.against);
	reuse_close(b.reuse);
	free_walk(&b.w);
	free(b.hashed);
	free(b.task_end);
	free(b.retry);
	free(b.ring);
	pthread_mutex_destroy(&b.lock);
	pthread_cond_destroy(&b.cond);
	pthread_cond_destroy(&b.not_full);
	r->seconds = vbfs_monotonic() - start;
	return err;
}

vbfs_err vbfs_index_put_meta(const char *dir, const char *key, const void *val, size_t len,
			     const char *sign_key, char why[VBFS_WHY_LEN])
{
	struct vbfs_build_opts o = { .index = dir, .sign_key = sign_key };
	struct build b = { .o = &o, .why = why, .store_fd = -1 };
	vbfs_err err;
	int rc;
	why[0] = '\0';
	if ((sign_key && (err = idx_check_secret_key(sign_key, why))) || (err = open_env(&b)))
		goto out;
	if ((rc = mdb_txn_begin(b.env, NULL, 0, &b.txn))) {
		err = idx_lmdb_err(rc, "begin write transaction", why);
		goto out;
	}
	if ((err = idx_open_dbs(b.txn, false, &b.db, why)) ||
	    (err = put(&b, b.db.meta, key, strlen(key), val, len, "write meta")) ||
	    (err = seal(&b)))
		goto out;
	rc = mdb_txn_commit(b.txn);
	b.txn = NULL;
	if (rc)
		err = idx_lmdb_err(rc, "commit index", why);
out:
	if (b.txn)
		mdb_txn_abort(b.txn);
	if (b.env)
		mdb_env_close(b.env);
	return err;
}
