/*
 * build.c - walk the store, hash regular files on every core, and write the
 * whole index in ONE LMDB write transaction: a crash, a kill -9 or Ctrl-C
 * before the commit leaves the previous index exactly as it was.
 *
 * Steps (all inside the write txn):
 *   1. walk the store (no symlink followed), parents before children;
 *   2. give each entry its old id when the path existed with the same type,
 *      and decide which files keep their digests (same size, mtime, inode);
 *   3. drop the old directory entries and every removed id;
 *   4. hash the rest on a worker pool (files split into chunks of blocks so
 *      one big file uses both cores), writing each file's digest runs on
 *      this thread as it completes (LMDB writes belong to one thread);
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

#define CHUNK_BLOCKS 64u   /* blocks per hashing task (64 MiB at 1 MiB) */

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
	/* hashing results, regular files only */
	uint8_t *digests;           /* nblocks * 32 */
	uint64_t nblocks;
	atomic_uint chunks_left;
	atomic_int failed;          /* errno of a read failure, or -1 for "changed" */
	uint8_t file_digest[VBFS_DIGEST_LEN];
	uint32_t flags;
};

struct walk {
	struct walk_entry *v;
	size_t n, cap;
};

struct task { size_t entry; uint64_t first, count; };

struct build {
	const struct vbfs_build_opts *o;
	struct vbfs_build_result *r;
	char *why;
	int store_fd;
	uint32_t block_size;
	struct walk w;
	struct task *tasks;
	size_t ntasks;
	/* completion queue: worker -> writer thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t *done;               /* entry indexes whose hashing finished */
	size_t ndone, done_read;
	uint64_t bytes_done;
	/* LMDB */
	MDB_env *env;
	MDB_txn *txn;
	struct idx_dbs db;
	struct vbfs_manifest *against;
	volatile int abort;         /* workers stop: interrupted or failed */
};

static vbfs_err io_err(char *why, const char *what, const char *path)
{
	snprintf(why, VBFS_WHY_LEN, "%s%s%s: %s", what, *path ? " " : "", path, strerror(errno));
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
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 1024;
		struct walk_entry *v = realloc(w->v, cap * sizeof *v);
		if (!v)
			return NULL;
		w->v = v;
		w->cap = cap;
	}
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

/* Walk directory entry `di` (already pushed, st filled) whose fd is `dfd`;
 * depth-first, children sorted, so the array has parents before children
 * and each directory's children together. */
static vbfs_err walk_dir(struct build *b, size_t di, int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	vbfs_err err = VBFS_OK;
	if (!d) {
		close(dfd);
		return io_err(b->why, "open directory", b->w.v[di].path);
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **nn = realloc(names, cap * sizeof *nn);
			if (!nn) { err = VBFS_ERR_NOMEM; goto out; }
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) { err = VBFS_ERR_NOMEM; goto out; }
		n++;
	}
	if (errno) {
		err = io_err(b->why, "read directory", b->w.v[di].path);
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
			err = io_err(b->why, "stat", e->path);
			break;
		}
		if (S_ISLNK(e->st.st_mode)) {
			size_t tcap = (size_t)e->st.st_size + 1;
			if (tcap < 2 || tcap > 65536) tcap = 4096;
			char *t = malloc(tcap);
			ssize_t tl = t ? readlinkat(dirfd(d), names[i], t, tcap - 1) : -1;
			if (tl < 0) { free(t); err = io_err(b->why, "readlink", e->path); break; }
			t[tl] = '\0';
			e->target = t;
		} else if (S_ISDIR(e->st.st_mode)) {
			int cfd = openat(dirfd(d), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0) {
				/* An unreadable directory is recorded (so the mount lists
				 * it) and reported; its contents cannot be indexed. */
				struct vbfs_event ev = { .kind = VBFS_EV_UNREADABLE, .path = e->path,
					.path_len = strlen(e->path), .block = -1, .detail = strerror(errno) };
				emit(b, &ev);
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
					old.store_ino == e->st.st_ino &&
					!(old.flags & (VBFS_F_UNREADABLE | VBFS_F_DAMAGED)) &&
					(!b->o->file_digests || (old.flags & VBFS_F_FILE_DIGEST));
				continue;
			}
		}
		e->id = (*next_id)++;
	}
	b->w.v[0].has_old = true;
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

static vbfs_err put_runs(struct build *b, const struct walk_entry *w)
{
	uint8_t key[16];
	vbfs_err err = VBFS_OK;
	idx_be64(key, w->id);
	for (uint64_t run = 0; run * VBFS_RUN_BLOCKS < w->nblocks && !err; run++) {
		uint64_t first = run * VBFS_RUN_BLOCKS;
		uint64_t n = w->nblocks - first < VBFS_RUN_BLOCKS ? w->nblocks - first : VBFS_RUN_BLOCKS;
		idx_be64(key + 8, run);
		err = put(b, b->db.blocks, key, 16, w->digests + first * VBFS_DIGEST_LEN,
			  n * VBFS_DIGEST_LEN, "write digests");
	}
	return err;
}

/* ---- 4. hashing (worker threads) --------------------------------------- */

static void hash_task(void *ctx, size_t t, void *buf)
{
	struct build *b = ctx;
	struct task *task = &b->tasks[t];
	struct walk_entry *w = &b->w.v[task->entry];
	EVP_MD_CTX *whole = NULL;
	int fd = vbfs_store_open(b->store_fd, w->path, 0);
	uint64_t done_bytes = 0;
	if (fd < 0) {
		atomic_store(&w->failed, errno);
		goto finish;
	}
	/* Whole-file SHA-256 (for export / --against) rides the same read;
	 * with it a file is one task, since the digest is sequential. */
	if (b->o->file_digests) {
		whole = EVP_MD_CTX_new();
		if (!whole || !EVP_DigestInit_ex(whole, EVP_sha256(), NULL)) {
			atomic_store(&w->failed, ENOMEM);
			goto finish;
		}
	}
	for (uint64_t blk = task->first; blk < task->first + task->count; blk++) {
		uint64_t off = blk * b->block_size;
		size_t len = vbfs_block_len((uint64_t)w->st.st_size, b->block_size, blk);
		ssize_t got = vbfs_block_read(fd, buf, len, off);
		if (got < 0 || (size_t)got < len) {
			/* -1: the file shrank while it was being indexed */
			atomic_store(&w->failed, got < 0 ? errno : -1);
			goto finish;
		}
		unsigned int dl = VBFS_DIGEST_LEN;
		EVP_Digest(buf, len, w->digests + blk * VBFS_DIGEST_LEN, &dl, EVP_sha256(), NULL);
		if (whole)
			EVP_DigestUpdate(whole, buf, len);
		done_bytes += len;
		if (b->abort)
			goto finish;
	}
	if (whole)
		EVP_DigestFinal_ex(whole, w->file_digest, NULL);
finish:
	EVP_MD_CTX_free(whole);
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&b->lock);
	b->bytes_done += done_bytes;
	if (atomic_fetch_sub(&w->chunks_left, 1) == 1)
		b->done[b->ndone++] = task->entry;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
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

static vbfs_err finish_file(struct build *b, size_t i)
{
	struct walk_entry *w = &b->w.v[i];
	int failed = atomic_load(&w->failed);
	vbfs_err err;
	if (failed) {
		/* Never record digests we could not compute: the file is marked
		 * unreadable and every read of it through the mount fails. */
		struct vbfs_event ev = { .kind = VBFS_EV_UNREADABLE, .path = w->path,
			.path_len = strlen(w->path), .block = -1,
			.detail = failed < 0 ? "file shrank while being indexed" : strerror(failed) };
		w->flags = VBFS_F_UNREADABLE;
		w->nblocks = 0;
		b->r->files_unreadable++;
		emit(b, &ev);
	} else {
		if (b->o->file_digests)
			w->flags |= VBFS_F_FILE_DIGEST;
		if (b->against)
			against_check(b, w);
		b->r->files_hashed++;
		b->r->bytes_hashed += (uint64_t)w->st.st_size;
	}
	if (w->has_old && (err = delete_runs(b, w->id)))
		return err;
	if ((err = put_runs(b, w)) || (err = put_entry(b, i)))
		return err;
	free(w->digests);
	w->digests = NULL;
	return VBFS_OK;
}

static void report_progress(struct build *b, uint64_t total_bytes, uint64_t total_files)
{
	if (!b->o->progress)
		return;
	pthread_mutex_lock(&b->lock);
	struct vbfs_progress p = { .bytes_done = b->bytes_done, .bytes_total = total_bytes,
				   .files_done = b->done_read, .files_total = total_files };
	pthread_mutex_unlock(&b->lock);
	b->o->progress(b->o->progress_ctx, &p);
}

static vbfs_err hash_and_write(struct build *b)
{
	size_t nfiles = 0;
	uint64_t total = 0;
	struct pool pool;
	vbfs_err err = VBFS_OK;

	/* Plan the tasks. */
	for (size_t i = 0; i < b->w.n; i++) {
		struct walk_entry *w = &b->w.v[i];
		if (!S_ISREG(w->st.st_mode) || w->reused)
			continue;
		w->nblocks = vbfs_nblocks((uint64_t)w->st.st_size, b->block_size);
		uint64_t per = b->o->file_digests ? (w->nblocks ? w->nblocks : 1) : CHUNK_BLOCKS;
		uint64_t nchunks = w->nblocks ? (w->nblocks + per - 1) / per : 1;
		b->ntasks += nchunks;
		nfiles++;
		total += (uint64_t)w->st.st_size;
	}
	b->tasks = calloc(b->ntasks ? b->ntasks : 1, sizeof *b->tasks);
	b->done = calloc(nfiles ? nfiles : 1, sizeof *b->done);
	if (!b->tasks || !b->done)
		return VBFS_ERR_NOMEM;
	size_t t = 0;
	for (size_t i = 0; i < b->w.n; i++) {
		struct walk_entry *w = &b->w.v[i];
		if (!S_ISREG(w->st.st_mode) || w->reused)
			continue;
		uint64_t per = b->o->file_digests ? (w->nblocks ? w->nblocks : 1) : CHUNK_BLOCKS;
		uint64_t nchunks = w->nblocks ? (w->nblocks + per - 1) / per : 1;
		if (!(w->digests = malloc(w->nblocks ? w->nblocks * VBFS_DIGEST_LEN : 1)))
			return VBFS_ERR_NOMEM;
		if (!w->nblocks && b->o->file_digests) {
			/* The empty file's SHA-256. */
			unsigned int dl = VBFS_DIGEST_LEN;
			EVP_Digest("", 0, w->file_digest, &dl, EVP_sha256(), NULL);
		}
		atomic_init(&w->chunks_left, (unsigned)nchunks);
		atomic_init(&w->failed, 0);
		for (uint64_t c = 0; c < nchunks; c++) {
			uint64_t first = c * per;
			b->tasks[t++] = (struct task){ i, first,
				w->nblocks - first < per ? w->nblocks - first : per };
		}
	}

	if (b->ntasks && pool_start(&pool, b->o->jobs, b->ntasks, b->block_size, hash_task, b, &b->abort)) {
		snprintf(b->why, VBFS_WHY_LEN, "cannot start hashing threads");
		return VBFS_ERR_NOMEM;
	}
	/* Write each file as it completes; LMDB writes stay on this thread. */
	while (b->ntasks && b->done_read < nfiles) {
		pthread_mutex_lock(&b->lock);
		while (b->done_read == b->ndone && !(b->o->stop && *b->o->stop)) {
			if (b->ndone == nfiles)
				break;
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000000;
			if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
			pthread_cond_timedwait(&b->cond, &b->lock, &until);
			pthread_mutex_unlock(&b->lock);
			report_progress(b, total, nfiles);
			pthread_mutex_lock(&b->lock);
		}
		size_t upto = b->ndone;
		pthread_mutex_unlock(&b->lock);
		if (b->o->stop && *b->o->stop) {
			err = VBFS_ERR_INTERRUPTED;
			break;
		}
		for (; b->done_read < upto && !err; b->done_read++)
			err = finish_file(b, b->done[b->done_read]);
		if (err)
			break;
		report_progress(b, total, nfiles);
	}
	if (b->ntasks) {
		if (err)
			b->abort = 1;
		pool_join(&pool);
	}
	return err;
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
		snprintf(why, VBFS_WHY_LEN, "%s: not a directory (an index is a directory)", dir);
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
			snprintf(why, VBFS_WHY_LEN, "%s: not a vbfs index and not empty "
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
			snprintf(why, VBFS_WHY_LEN, "index %s is inside the store %s: keep the "
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
	    (err = put_u64(b, "next_id", next_id)))
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
		if (ngone == capgone) {
			capgone = capgone ? 2 * capgone : 256;
			uint64_t *g = realloc(gone, capgone * sizeof *g);
			if (!g) { err = VBFS_ERR_NOMEM; break; }
			gone = g;
		}
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
		free(w->v[i].digests);
	}
	free(w->v);
}

vbfs_err vbfs_build(const struct vbfs_build_opts *o, struct vbfs_build_result *r,
		    char why[VBFS_WHY_LEN])
{
	struct build b = { .o = o, .r = r, .why = why, .store_fd = -1 };
	struct vbfs_meta old = { 0 };
	bool had_old = false, created_dir = false;
	uint64_t next_id = VBFS_ROOT_ID + 1;
	double start = vbfs_monotonic();
	vbfs_err err;
	int rc;

	memset(r, 0, sizeof *r);
	why[0] = '\0';
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	if (o->block_size && (o->block_size < VBFS_BLOCK_MIN || o->block_size > VBFS_BLOCK_MAX ||
			      (o->block_size & (o->block_size - 1)))) {
		snprintf(why, VBFS_WHY_LEN, "block size %u: must be a power of two from 4K to 64M",
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
	{
		struct stat ist;
		created_dir = stat(o->index, &ist) < 0 && errno == ENOENT;
	}
	if ((err = prepare_dir(o->index, why)) || (err = open_env(&b)))
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
			err = VBFS_OK;   /* a damaged old root is what a rebuild mends */
			had_old = true;
			if (old.next_id > next_id)
				next_id = old.next_id;
		}
	}
	b.block_size = o->block_size ? o->block_size : had_old ? old.block_size : VBFS_BLOCK_DEFAULT;

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

	/* 2. ids, reuse */
	assign_ids(&b, &next_id, had_old && old.block_size == b.block_size);
	for (size_t i = 0; i < b.w.n; i++) {
		struct walk_entry *w = &b.w.v[i];
		if (w->reused) {
			r->files_reused++;
			r->bytes_reused += (uint64_t)w->st.st_size;
			w->flags = w->old_flags & (VBFS_F_FILE_DIGEST);
			memcpy(w->file_digest, w->old_digest, VBFS_DIGEST_LEN);
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
	/* 3. removed entries; directory entries are rewritten */
	if ((err = drop_removed(&b)))
		goto out;
	for (size_t i = 0; i < b.w.n; i++) {
		if (i && (err = put_dirent(&b, i)))
			goto out;
		if ((!S_ISREG(b.w.v[i].st.st_mode) || b.w.v[i].reused) && (err = put_entry(&b, i)))
			goto out;
	}
	/* 4. hash */
	if ((err = hash_and_write(&b)))
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
		snprintf(why, VBFS_WHY_LEN, "interrupted: the previous index is unchanged");
	if (b.txn)
		mdb_txn_abort(b.txn);   /* nothing of this build is written */
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
	free_walk(&b.w);
	free(b.tasks);
	free(b.done);
	pthread_mutex_destroy(&b.lock);
	pthread_cond_destroy(&b.cond);
	r->seconds = vbfs_monotonic() - start;
	return err;
}
