/*
 * ops.c - the FUSE operations (low-level API: inode numbers are index ids,
 * so lookup is one LMDB get and no path is ever resolved twice).
 *
 * The read path, end to end:
 *   vbfs_op_read(ino, off, size)
 *     -> prefetch_hint(): the workers start on the blocks after this read
 *     -> each block b in [off, off+size): fs_block_get()
 *          cache hit                          -> verified bytes
 *          miss: vbfs_block_verify(fd, b, digest[b])    (libvbfs)
 *                ok      -> cache, bytes
 *                damaged -> the event (path, block, offset); the WHOLE
 *                           request fails with EIO: never a short read,
 *                           which the kernel would pad with zeros
 *     -> one reply: iovecs pointing into the verified blocks (no copy)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fuse_lowlevel.h>
#include "unindexed.h"
#include "vbfs_fs.h"

/* The store is immutable while mounted: let the kernel cache for a day. */
#define ATTR_TIMEOUT 86400.0
#define XATTR_STATS "user.vbfs.stats"
#define XATTR_INDEX "user.vbfs.index"
#define XATTR_USER_PREFIX "user."

static struct vbfs_fs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

/* ---- one read transaction per thread, renewed per request --------------- */

static pthread_key_t txn_key;
static pthread_once_t txn_once = PTHREAD_ONCE_INIT;
static void txn_free(void *t) { vbfs_txn_end(t); }
static void txn_key_init(void) { pthread_key_create(&txn_key, txn_free); }

static vbfs_txn *txn_get(struct vbfs_fs *fs)
{
	pthread_once(&txn_once, txn_key_init);
	vbfs_txn *t = pthread_getspecific(txn_key);
	if (t)
		return vbfs_txn_renew(t) ? NULL : t;
	if (vbfs_txn_begin(fs->index, &t))
		return NULL;
	pthread_setspecific(txn_key, t);
	return t;
}

static void txn_put(vbfs_txn *t) { vbfs_txn_reset(t); }

/* ---- attributes ----------------------------------------------------------- */

static void entry_stat(const struct vbfs_fs *fs, const struct vbfs_entry *e, struct stat *st)
{
	memset(st, 0, sizeof *st);
	/* The store's inode number (or, when the index cannot vouch that it
	 * is unique, the holder's id): every path of one store inode shows the
	 * same, so cp -a, rsync -H and tar restore hard links as links.  (The
	 * FUSE node id stays the path's own index id, so events name the path
	 * that was read.) */
	st->st_ino = vbfs_entry_st_ino(fs->meta, e);
	st->st_mode = e->mode;
	st->st_nlink = e->nlink ? e->nlink : 1;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_size = (off_t)e->size;
	st->st_rdev = e->rdev;
	st->st_blksize = fs->meta->block_size;
	st->st_blocks = (blkcnt_t)e->alloc_blocks;   /* the store's: holes show in du */
	st->st_mtim.tv_sec = e->mtime_sec;
	st->st_mtim.tv_nsec = e->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static int lookup_err(vbfs_err err)
{
	return err == VBFS_ERR_NOTFOUND ? ENOENT : EIO;
}

static void vbfs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct vbfs_fs *fs = userdata;
	/* The tree never changes under the mount: let the kernel open files
	 * and directories itself (keeping their pages and listings), saving
	 * OPEN and RELEASE per file.  Not with unindexed=allow: unindexed
	 * files are served uncached (direct_io), which only OPEN can say. */
	if (!fs->allow_unindexed && fs->files && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		fs->no_open = true;
		if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
			conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
	}
	/* Readdirplus saves a LOOKUP per name for ls -l / find; symlink
	 * targets never change while mounted. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	/* Let several readahead requests be in flight: each may wait on a
	 * block that a prefetch worker is verifying. */
	conn->max_background = 32;
	conn->congestion_threshold = 24;
}

/* The store path of a directory inode (indexed or not), malloc'd. */
static char *dir_path(vbfs_txn *t, fuse_ino_t ino)
{
	struct vbfs_entry e;
	if (unindexed_ino(ino))
		return unindexed_path(ino);
	if (vbfs_txn_get(t, ino, &e))
		return NULL;
	return strndup(e.path, e.path_len);
}

/* A directory recorded as content unknown (the build could not read it):
 * log its `unreadable` event; listing it, or a lookup in it, must fail. */
static bool dir_unknown(struct vbfs_fs *fs, vbfs_txn *t, fuse_ino_t ino)
{
	struct vbfs_entry e;
	struct vbfs_event ev;
	if (unindexed_ino(ino) || vbfs_txn_get(t, ino, &e) || !vbfs_dir_unknown(&e, &ev))
		return false;
	sink_event(fs, ino, &ev);   /* under the turn: ev points into the index */
	return true;
}

static void vbfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vbfs_fs *fs = fs_of(req);
	struct fuse_entry_param ep = { .attr_timeout = ATTR_TIMEOUT, .entry_timeout = ATTR_TIMEOUT };
	struct vbfs_entry e;
	vbfs_txn *t = txn_get(fs);
	if (!t)
		return (void)fuse_reply_err(req, EIO);
	vbfs_err err = unindexed_ino(parent) ? VBFS_ERR_NOTFOUND
					     : vbfs_txn_lookup(t, parent, name, strlen(name), &e);
	if (err == VBFS_OK) {
		ep.ino = e.id;
		ep.generation = 1;
		entry_stat(fs, &e, &ep.attr);
	}
	if (err == VBFS_ERR_NOTFOUND && dir_unknown(fs, t, parent))
		err = VBFS_ERR_IO;   /* no name is known to be absent from it */
	char *parent_path = NULL;
	if (err == VBFS_ERR_NOTFOUND && fs->allow_unindexed)
		parent_path = dir_path(t, parent);
	txn_put(t);
	if (parent_path) {
		char *path = unindexed_join(parent_path, name);
		int rc = path ? unindexed_lookup(fs->store_fd, path, &ep.attr) : ENOMEM;
		free(path);
		free(parent_path);
		if (rc == 0) {
			ep.ino = ep.attr.st_ino;
			ep.generation = 1;
			/* Not in the index: the store may change; short timeouts. */
			ep.attr_timeout = ep.entry_timeout = 1.0;
			return (void)fuse_reply_entry(req, &ep);
		}
	}
	if (err == VBFS_ERR_NOTFOUND)
		return (void)fuse_reply_entry(req, &ep);   /* ino 0: cached negative entry */
	if (err)
		return (void)fuse_reply_err(req, lookup_err(err));
	fuse_reply_entry(req, &ep);
}

static void vbfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vbfs_fs *fs = fs_of(req);
	struct vbfs_entry e;
	struct stat st;
	(void)fi;
	if (unindexed_ino(ino)) {
		char *path = unindexed_path(ino);
		int rc = path ? unindexed_stat(fs->store_fd, path, ino, &st) : ENOENT;
		free(path);
		return (void)(rc ? fuse_reply_err(req, rc) : fuse_reply_attr(req, &st, 1.0));
	}
	vbfs_txn *t = txn_get(fs);
	if (!t)
		return (void)fuse_reply_err(req, EIO);
	vbfs_err err = vbfs_txn_get(t, ino, &e);
	if (!err)
		entry_stat(fs, &e, &st);
	txn_put(t);
	if (err)
		return (void)fuse_reply_err(req, lookup_err(err));
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void vbfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct vbfs_fs *fs = fs_of(req);
	struct vbfs_entry e;
	char *target = NULL;
	if (unindexed_ino(ino)) {
		char *path = unindexed_path(ino), buf[4096];
		struct stat st;
		int rc = path && vbfs_store_lstat(fs->store_fd, path, &st, buf, sizeof buf) == 0 ? 0 : ENOENT;
		free(path);
		if (!rc && !S_ISLNK(st.st_mode))
			rc = EINVAL;
		return (void)(rc ? fuse_reply_err(req, rc) : fuse_reply_readlink(req, buf));
	}
	vbfs_txn *t = txn_get(fs);
	if (!t)
		return (void)fuse_reply_err(req, EIO);
	vbfs_err err = vbfs_txn_get(t, ino, &e);
	if (!err && e.type == VBFS_T_LNK)
		target = strndup(e.target, e.target_len);
	txn_put(t);
	if (err)
		return (void)fuse_reply_err(req, lookup_err(err));
	if (!target)
		return (void)fuse_reply_err(req, e.type == VBFS_T_LNK ? ENOMEM : EINVAL);
	fuse_reply_readlink(req, target);
	free(target);
}

/* ---- directories ------------------------------------------------------------ */

static void vbfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vbfs_fs *fs = fs_of(req);
	struct vbfs_entry e;
	if (fs->no_open)
		return (void)fuse_reply_err(req, ENOSYS);   /* the kernel's from now on */
	if (unindexed_ino(ino)) {
		fi->cache_readdir = 0;
		return (void)fuse_reply_open(req, fi);
	}
	vbfs_txn *t = txn_get(fs);
	if (!t)
		return (void)fuse_reply_err(req, EIO);
	vbfs_err err = vbfs_txn_get(t, ino, &e);
	bool unknown = !err && dir_unknown(fs, t, ino);
	txn_put(t);
	if (err)
		return (void)fuse_reply_err(req, lookup_err(err));
	if (e.type != VBFS_T_DIR)
		return (void)fuse_reply_err(req, ENOTDIR);
	if (unknown)
		return (void)fuse_reply_err(req, EIO);   /* never list it as empty */
	fi->cache_readdir = !fs->allow_unindexed;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

struct dir_fill {
	fuse_req_t req;
	struct vbfs_fs *fs;
	char *buf;
	size_t size, used;
	bool plus;
	/* unindexed=allow: entries are numbered; offset = position */
	bool numbered, full;
	off_t skip, pos;
	vbfs_txn *t;
	uint64_t parent;        /* index id of the directory, 0 if unindexed */
	const char *dir_path;
};

static int dir_put(struct dir_fill *d, const char *name, uint64_t nodeid,
		   const struct stat *st, off_t next)
{
	size_t want;
	if (d->plus) {
		struct fuse_entry_param ep = { .ino = nodeid, .generation = 1, .attr = *st,
			.attr_timeout = ATTR_TIMEOUT, .entry_timeout = ATTR_TIMEOUT };
		if (unindexed_ino(nodeid))
			ep.attr_timeout = ep.entry_timeout = 1.0;
		want = fuse_add_direntry_plus(d->req, d->buf + d->used, d->size - d->used,
					      name, &ep, next);
	} else
		want = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used,
					 name, st, next);
	if (want > d->size - d->used) {
		d->full = true;
		return 1;   /* full: the kernel asks again from this offset */
	}
	d->used += want;
	return 0;
}

static int dir_add(void *ctx, const struct vbfs_entry *e)
{
	struct dir_fill *d = ctx;
	size_t n;
	const char *name = vbfs_entry_name(e, &n);
	char cname[256];
	struct stat st;
	if (n > 255)
		return 0;
	memcpy(cname, name, n);
	cname[n] = '\0';
	entry_stat(d->fs, e, &st);
	if (d->numbered) {
		if (++d->pos <= d->skip)
			return 0;
		return dir_put(d, cname, e->id, &st, d->pos);
	}
	/* The offset of an entry is its id: readdir resumes after it. */
	return dir_put(d, cname, e->id, &st, (off_t)e->id);
}

/* unindexed=allow: store names the index lacks, after the indexed ones. */
static int dir_add_unindexed(void *ctx, const char *name)
{
	struct dir_fill *d = ctx;
	struct vbfs_entry e;
	struct stat st;
	if (d->parent && vbfs_txn_lookup(d->t, d->parent, name, strlen(name), &e) == VBFS_OK)
		return 0;
	if (++d->pos <= d->skip)
		return 0;
	char *path = unindexed_join(d->dir_path, name);
	int rc = path ? unindexed_lookup(d->fs->store_fd, path, &st) : ENOMEM;
	free(path);
	if (rc) {
		d->pos--;
		return 0;
	}
	return dir_put(d, name, st.st_ino, &st, d->pos);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct vbfs_fs *fs = fs_of(req);
	struct dir_fill d = { .req = req, .fs = fs, .size = size, .plus = plus };
	if (!(d.buf = malloc(size)))
		return (void)fuse_reply_err(req, ENOMEM);
	vbfs_txn *t = txn_get(fs);
	if (!t) {
		free(d.buf);
		return (void)fuse_reply_err(req, EIO);
	}
	vbfs_err err;
	if (dir_unknown(fs, t, ino)) {   /* with no_opendir, nothing checked it yet */
		err = VBFS_ERR_IO;
	} else if (!fs->allow_unindexed) {
		err = vbfs_txn_readdir(t, ino, (uint64_t)off, dir_add, &d);
	} else {
		char *path = dir_path(t, ino);
		d.numbered = true;
		d.skip = off;
		d.t = t;
		d.parent = unindexed_ino(ino) ? 0 : ino;
		d.dir_path = path;
		err = path ? VBFS_OK : VBFS_ERR_NOTFOUND;
		if (!err && d.parent)
			err = vbfs_txn_readdir(t, ino, 0, dir_add, &d);
		if (!err && !d.full)
			unindexed_list(fs->store_fd, path, dir_add_unindexed, &d);
		free(path);
	}
	txn_put(t);
	if (err)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void vbfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, false);
}

static void vbfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
				struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, true);
}

/* ---- files ------------------------------------------------------------------ */

void open_file_put(struct open_file *of)
{
	if (atomic_fetch_sub(&of->refs, 1) != 1)
		return;
	if (of->fd >= 0)
		close(of->fd);
	free(of->path);
	free(of);
}

/* Served unverified, by request (-o unindexed=allow); the event says so. */
static void open_unindexed(fuse_req_t req, struct vbfs_fs *fs, fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	struct open_file *of = calloc(1, sizeof *of);
	struct stat st;
	if (!of || !(of->path = unindexed_path(ino))) {
		free(of);
		return (void)fuse_reply_err(req, ENOENT);
	}
	/* Type first: a FIFO or a device in the store is never opened. */
	of->fd = vbfs_store_open_reg(fs->store_fd, of->path, &st);
	if (of->fd < 0) {
		int rc = st.st_mode ? EINVAL : errno;
		free(of->path);
		free(of);
		return (void)fuse_reply_err(req, rc);
	}
	atomic_init(&of->refs, 1);
	of->unindexed = true;
	of->e.id = ino;
	of->e.path = of->path;
	of->e.path_len = strlen(of->path);
	of->e.size = (uint64_t)st.st_size;
	struct vbfs_event ev = { .kind = VBFS_EV_UNINDEXED, .path = of->path,
		.path_len = of->e.path_len, .block = -1,
		.detail = "not in the index: served unverified (-o unindexed=allow)" };
	sink_event(fs, ino, &ev);
	fi->fh = (uint64_t)(uintptr_t)of;
	fi->direct_io = 1;   /* never cache unverified bytes */
	if (fuse_reply_open(req, fi) == -ENOENT)
		open_file_put(of);
}

/* An open_file for indexed regular file `e` (copied: e's pointers may
 * point into the index), judged against the store.  NULL: out of memory. */
static struct open_file *open_file_new(struct vbfs_fs *fs, const struct vbfs_entry *e)
{
	struct open_file *of = calloc(1, sizeof *of);
	if (!of || !(of->path = malloc(e->path_len + 1))) {
		free(of);
		return NULL;
	}
	memcpy(of->path, e->path, e->path_len);
	of->path[e->path_len] = '\0';
	of->e = *e;
	of->e.path = of->path;
	of->e.target = NULL;
	of->e.target_len = 0;
	atomic_init(&of->refs, 1);
	atomic_init(&of->last_block, -2);
	atomic_init(&of->ahead, 0);
	/* Judge the store file now; an event waits for the first read.  What
	 * the path names is noted first: a change in between is seen later. */
	store_id_of(fs->store_fd, of->path, &of->judged);
	of->state = vbfs_file_open(fs->store_fd, &of->e, &of->fd, &of->state_ev);
	of->state_ev.path = of->path;
	struct stat st;
	of->cache_id = of->e.id | 1ull << 63;   /* never an index id */
	if (of->fd >= 0 && fstat(of->fd, &st) == 0 && (uint64_t)st.st_ino == e->store_ino &&
	    (!e->store_dev || (uint64_t)st.st_dev == e->store_dev))
		of->cache_id = vbfs_entry_data_id(e);
	return of;
}

/*
 * tar, cp -a and rsync read a directory's files one after another in
 * readdir order.  When one is opened, verify the first blocks of the next
 * few on the workers, so the next file is ready when the reader gets there
 * (within a file, prefetch_hint does the same).  Budget: readahead blocks.
 */
#define NEXT_FILES_MAX 64
struct next_files {
	struct vbfs_fs *fs;
	struct vbfs_entry e[NEXT_FILES_MAX];
	char *path[NEXT_FILES_MAX];
	unsigned n;                     /* files queued */
	unsigned seen;                  /* files in the window already cached */
	uint64_t blocks;
};

static int next_file_add(void *ctx, const struct vbfs_entry *e)
{
	struct next_files *nf = ctx;
	uint32_t bs = nf->fs->meta->block_size;
	if (e->type != VBFS_T_REG || !e->size || (e->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)))
		return 0;
	if (cache_has(&nf->fs->cache, vbfs_entry_data_id(e), 0)) {
		/* Already verified or on its way: it still takes its place in
		 * the window.  Skipping it would push the window further ahead
		 * on every open, until the look-ahead evicted blocks nobody had
		 * read yet and every block was hashed three times. */
		nf->seen++;
		nf->blocks += vbfs_nblocks(e->size, bs);
		return nf->seen + nf->n >= nf->fs->next_files
		       || nf->blocks >= nf->fs->readahead_blocks;
	}
	if (!(nf->path[nf->n] = strndup(e->path, e->path_len)))
		return 1;
	nf->e[nf->n] = *e;
	nf->e[nf->n].path = nf->path[nf->n];
	nf->e[nf->n].target = NULL;
	nf->e[nf->n].target_len = 0;
	nf->n++;
	nf->blocks += vbfs_nblocks(e->size, bs);
	return nf->seen + nf->n >= nf->fs->next_files || nf->blocks >= nf->fs->readahead_blocks;
}

/* The order `of`'s reader follows (lookahead.c): noted when its first
 * read or open arrives, before the answer lets the reader go on. */
static enum lookahead_order lookahead_of(struct vbfs_fs *fs, const struct open_file *of)
{
	enum lookahead_order order = LOOKAHEAD_NONE;
	if (!fs->prefetch || !fs->readahead_blocks || !fs->next_files || !fs->lookahead)
		return order;
	vbfs_txn *t = txn_get(fs);
	if (t) {
		order = lookahead_note(fs->lookahead, fs->meta, t, &of->e);
		txn_put(t);
	}
	return order;
}

static void prefetch_next_files(struct vbfs_fs *fs, const struct open_file *of,
				enum lookahead_order order)
{
	struct next_files nf = { .fs = fs };
	uint64_t budget = fs->readahead_blocks;
	if (order == LOOKAHEAD_NONE)
		return;
	vbfs_txn *t = txn_get(fs);
	if (!t)
		return;
	lookahead_next(fs->lookahead, fs->meta, t, &of->e, order, next_file_add, &nf);
	txn_put(t);
	for (unsigned i = 0; i < nf.n; i++) {
		struct open_file *next = budget ? open_file_new(fs, &nf.e[i]) : NULL;
		if (next && fs->no_open)
			files_put(fs->files, next);   /* its READ will find it opened */
		if (next && next->state == VBFS_FILE_OK) {
			uint64_t n = vbfs_nblocks(next->e.size, fs->meta->block_size);
			n = n < budget ? n : budget;
			prefetch_range(fs->prefetch, next, 0, n);
			budget -= n;
		}
		if (next)
			open_file_put(next);   /* the queued blocks hold their own refs */
		free(nf.path[i]);
	}
}

static void vbfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vbfs_fs *fs = fs_of(req);
	struct vbfs_entry e;
	struct open_file *of;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return (void)fuse_reply_err(req, EROFS);
	if (fs->no_open)
		return (void)fuse_reply_err(req, ENOSYS);   /* the kernel's from now on */
	if (unindexed_ino(ino))
		return open_unindexed(req, fs, ino, fi);
	vbfs_txn *t = txn_get(fs);
	if (!t)
		return (void)fuse_reply_err(req, EIO);
	vbfs_err err = vbfs_txn_get(t, ino, &e);
	if (err) {
		txn_put(t);
		return (void)fuse_reply_err(req, lookup_err(err));
	}
	if (e.type != VBFS_T_REG) {
		txn_put(t);
		return (void)fuse_reply_err(req, e.type == VBFS_T_DIR ? EISDIR : EINVAL);
	}
	/* Copy out of the index before the turn ends; judge the store after. */
	char *path = strndup(e.path, e.path_len);
	struct vbfs_entry copy = e;
	copy.path = path;
	copy.target = NULL;
	copy.target_len = 0;
	txn_put(t);
	of = path ? open_file_new(fs, &copy) : NULL;
	free(path);
	if (!of)
		return (void)fuse_reply_err(req, ENOMEM);
	fi->fh = (uint64_t)(uintptr_t)of;
	fi->keep_cache = 1;   /* verified pages stay: re-reads at page-cache speed */
	fi->noflush = 1;
	/* Our reference for the sibling look-ahead: RELEASE may come at once. */
	atomic_fetch_add(&of->refs, 1);
	atomic_store(&of->looked_ahead, true);
	enum lookahead_order order = lookahead_of(fs, of);
	if (fuse_reply_open(req, fi) == -ENOENT)
		open_file_put(of);   /* the opener was interrupted */
	else
		prefetch_next_files(fs, of, order);
	open_file_put(of);
}

static void vbfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	open_file_put((struct open_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/*
 * Healing (-o replica=, -o parity=): the store's copy of a block failed;
 * ask the other sources for bytes that verify.  The events go out in the
 * order a reader of the log needs: the store's damage (with `repairable`),
 * each refused candidate, then `healed`.
 */
#define HEAL_REFUSED_MAX 16
struct heal_log {
	struct vbfs_event refused[HEAL_REFUSED_MAX];
	unsigned n;
};

static void heal_refused(void *ctx, const struct vbfs_event *ev)
{
	struct heal_log *log = ctx;
	if (log->n < HEAL_REFUSED_MAX)
		log->refused[log->n++] = *ev;
}

static void heal_slot(struct vbfs_fs *fs, struct open_file *of, uint64_t block,
		      struct cache_slot *s)
{
	struct heal_log log = { .n = 0 };
	struct vbfs_event ev;
	uint32_t bs = fs->meta->block_size;
	const char *source = vbfs_heal_block(fs->heal, &of->e, block, s->expected, s->buf,
					     heal_refused, &log);
	vbfs_event_from_check(&ev, &of->e, block, bs, s->expected, &s->chk);
	if (of->fd < 0) {   /* the file itself is gone or replaced: say so per block */
		ev.kind = of->state_ev.kind;
		ev.detail = of->state_ev.detail;
	}
	ev.repair = source ? VBFS_REPAIR_YES : VBFS_REPAIR_NO;
	ev.source = source;
	sink_event(fs, of->e.id, &ev);
	for (unsigned i = 0; i < log.n; i++)
		sink_event(fs, of->e.id, &log.refused[i]);
	if (!source)
		return;   /* s->chk keeps the store's verdict: EIO as without sources */
	vbfs_event_healed(&ev, &of->e, block, bs, s->expected, source);
	sink_event(fs, of->e.id, &ev);
	memset(&s->chk, 0, sizeof s->chk);
	s->chk.verdict = VBFS_BLOCK_OK;
	s->chk.got = s->len;
	memcpy(s->chk.actual, s->expected, VBFS_DIGEST_LEN);
}

struct cache_slot *fs_block_get(struct vbfs_fs *fs, struct open_file *of, uint64_t block,
				struct cache_slot *fallback, bool prefetch)
{
	struct cache_slot *s;
	uint32_t bs = fs->meta->block_size;
	enum cache_result r = cache_get(&fs->cache, of->cache_id, block, prefetch, &s);
	if (r == CACHE_HIT) {
		if (s)
			atomic_fetch_add(&fs->cache_hits, 1);
		return s;   /* NULL for prefetch: already there or on its way */
	}
	if (r == CACHE_FULL) {
		if (prefetch)
			return NULL;
		s = fallback;   /* every slot busy: verify into the caller's buffer */
		if (!s->buf && !(s->buf = vbfs_block_buf(bs))) {
			s->chk.verdict = VBFS_BLOCK_UNREADABLE;
			s->chk.err = ENOMEM;
			s->state = SLOT_FAILED;
			return s;
		}
	}
	s->len = vbfs_block_len(of->e.size, bs, block);
	if (r == CACHE_MISS)   /* healing fills a whole block's buffer */
		cache_fit(s, fs->heal ? bs : s->len);
	vbfs_txn *t = txn_get(fs);
	bool hole = false;
	vbfs_err err = t ? vbfs_txn_digest(t, vbfs_entry_data_id(&of->e), block, s->expected)
			 : VBFS_ERR_LMDB;
	if (!err && (of->e.flags & VBFS_F_HOLES))
		err = vbfs_txn_hole(t, vbfs_entry_data_id(&of->e), block, &hole);
	if (t)
		txn_put(t);
	if (err) {
		memset(&s->chk, 0, sizeof s->chk);
		s->chk.verdict = VBFS_BLOCK_UNREADABLE;
		s->chk.err = EBADMSG;   /* the index has no digest for this block */
	} else if (of->fd < 0) {
		/* Only with sources: the store's file is gone; each block heals. */
		memset(&s->chk, 0, sizeof s->chk);
		s->chk.verdict = of->state == VBFS_FILE_MISSING ? VBFS_BLOCK_MISSING
								 : VBFS_BLOCK_UNREADABLE;
		s->chk.err = EIO;
		heal_slot(fs, of, block, s);
	} else if (vbfs_block_judge(of->fd, block * bs, s->len, hole, s->expected, s->buf, &s->chk)
		   > VBFS_BLOCK_TRANSIENT && fs->heal) {
		heal_slot(fs, of, block, s);
	}
	if (!err && s->chk.verdict <= VBFS_BLOCK_TRANSIENT) {
		atomic_fetch_add(&fs->blocks_verified, 1);
		atomic_fetch_add(&fs->bytes_verified, s->len);
	}
	if (r == CACHE_FULL) {
		s->state = s->chk.verdict <= VBFS_BLOCK_TRANSIENT ? SLOT_READY : SLOT_FAILED;
		return s;
	}
	cache_publish(&fs->cache, s);
	if (prefetch) {
		cache_release(&fs->cache, s);
		return NULL;
	}
	return s;
}

static void block_event(struct vbfs_fs *fs, struct open_file *of, uint64_t block,
			const struct cache_slot *s)
{
	struct vbfs_event ev;
	vbfs_event_from_check(&ev, &of->e, block, fs->meta->block_size, s->expected, &s->chk);
	sink_event(fs, of->e.id, &ev);
}

/*
 * The open file a READ is for, with a reference for the caller: the handle
 * OPEN gave, or (no_open) the table's.  Without OPEN there is no "new open"
 * to look at the store again, so every READ does: when the path no longer
 * names the file that was judged (replaced, deleted, grown, truncated, a
 * directory now), the file is judged anew, as an open() did before.
 * NULL: the inode is not an indexed regular file (or out of memory); *err.
 */
static struct open_file *read_file_of(struct vbfs_fs *fs, fuse_ino_t ino,
				      struct fuse_file_info *fi, int *err)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh, *fresh;
	struct store_id now;
	struct vbfs_entry e;
	if (of) {
		atomic_fetch_add(&of->refs, 1);
		return of;
	}
	if ((of = files_get(fs->files, ino))) {
		store_id_of(fs->store_fd, of->path, &now);
		if (store_id_same(&now, &of->judged))
			return of;
		fresh = open_file_new(fs, &of->e);
	} else {
		vbfs_txn *t = txn_get(fs);
		vbfs_err verr = t ? vbfs_txn_get(t, ino, &e) : VBFS_ERR_LMDB;
		char *path = verr ? NULL : strndup(e.path, e.path_len);
		if (t)
			txn_put(t);
		if (verr || e.type != VBFS_T_REG) {
			*err = verr ? lookup_err(verr) : EINVAL;
			free(path);
			return NULL;
		}
		e.path = path;
		e.target = NULL;
		e.target_len = 0;
		fresh = path ? open_file_new(fs, &e) : NULL;
		free(path);
	}
	if (of)
		open_file_put(of);
	if (!fresh) {
		*err = ENOMEM;
		return NULL;
	}
	files_put(fs->files, fresh);
	return fresh;
}

#define STACK_BLOCKS 16

static void vbfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	struct vbfs_fs *fs = fs_of(req);
	struct open_file *of;
	uint32_t bs = fs->meta->block_size;
	struct cache_slot *stack_slots[STACK_BLOCKS], **slots = stack_slots;
	struct cache_slot stack_fb[STACK_BLOCKS], *fallback = stack_fb;
	struct iovec stack_iov[STACK_BLOCKS], *iov = stack_iov;
	uint64_t first, last, n, got = 0;
	bool damaged = false;
	int err = 0;
	enum lookahead_order order = LOOKAHEAD_NONE;

	/* Our own reference: once the reply is sent, the reader may close()
	 * and RELEASE (on another thread) would free `of` under us. */
	if (!(of = read_file_of(fs, ino, fi, &err)))
		return (void)fuse_reply_err(req, err);
	atomic_fetch_add(&fs->reads, 1);
	if (of->unindexed) {
		char *buf = malloc(size ? size : 1);
		ssize_t got_now = buf ? pread(of->fd, buf, size, off) : -1;
		if (got_now < 0)
			fuse_reply_err(req, buf ? errno : ENOMEM);
		else
			fuse_reply_buf(req, buf, (size_t)got_now);
		free(buf);
		goto out;
	}
	if (of->state != VBFS_FILE_OK && of->state != VBFS_FILE_GROWN &&
	    of->state != VBFS_FILE_RELINKED && !(fs->heal && of->state != VBFS_FILE_DAMAGED)) {
		sink_event(fs, of->e.id, &of->state_ev);
		fuse_reply_err(req, EIO);
		goto out;
	}
	if (of->state != VBFS_FILE_OK)   /* GROWN, RELINKED, or gone with sources to heal from */
		sink_event(fs, of->e.id, &of->state_ev);   /* logged once; bytes still verified */
	if ((uint64_t)off >= of->e.size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		goto out;
	}
	uint64_t end = (uint64_t)off + size < of->e.size ? (uint64_t)off + size : of->e.size;
	first = (uint64_t)off / bs;
	last = (end - 1) / bs;
	n = last - first + 1;
	/* The first read of a file starts the next files' look-ahead (OPEN did,
	 * when there was one); its order is judged now, before the answer. */
	if (first == 0 && !atomic_exchange(&of->looked_ahead, true))
		order = lookahead_of(fs, of);
	if (n > STACK_BLOCKS) {
		slots = calloc(n, sizeof *slots);
		fallback = calloc(n, sizeof *fallback);
		iov = calloc(n, sizeof *iov);
		if (!slots || !fallback || !iov) {
			free(slots); free(fallback); free(iov);
			fuse_reply_err(req, ENOMEM);
			goto out;
		}
	} else
		memset(stack_fb, 0, sizeof(stack_fb[0]) * n);

	/* Sequential?  Hand the next blocks to the workers now, before this
	 * request's own blocks are hashed: a block not yet verified (the first
	 * of a file the look-ahead did not reach, a reader that outran the
	 * workers) is hashed here while the workers hash the ones after it,
	 * instead of the workers waiting for this reply. */
	int64_t prev = atomic_exchange(&of->last_block, (int64_t)last);
	if (fs->prefetch && (prev == (int64_t)first || prev + 1 == (int64_t)first || first == 0))
		prefetch_hint(fs->prefetch, of, last);

	for (got = 0; got < n; got++) {
		uint64_t b = first + got;
		struct cache_slot *s = fs_block_get(fs, of, b, &fallback[got], false);
		slots[got] = s;
		if (s->state == SLOT_FAILED) {
			if (of->fd >= 0)   /* else heal_slot logged the block's event */
				block_event(fs, of, b, s);
			damaged = true;
			got++;
			break;
		}
		if (s->chk.verdict == VBFS_BLOCK_TRANSIENT || s->chk.layout != VBFS_LAYOUT_SAME)
			block_event(fs, of, b, s);   /* served; a changed layout is still damage */
		uint64_t bstart = b * bs;
		uint64_t from = b == first ? (uint64_t)off - bstart : 0;
		uint64_t to = b == last ? end - bstart : s->len;
		iov[got].iov_base = (char *)s->buf + from;
		iov[got].iov_len = to - from;
	}
	if (damaged)
		fuse_reply_err(req, EIO);   /* the whole request: no short read */
	else if (fuse_reply_iov(req, iov, (int)n) == 0)
		atomic_fetch_add(&fs->bytes_served, end - (uint64_t)off);

	for (uint64_t i = 0; i < got; i++) {
		if (slots[i] == &fallback[i])
			free(fallback[i].buf);
		else
			cache_release(&fs->cache, slots[i]);
	}
	/* The first read of a file starts the next files' look-ahead (OPEN did,
	 * when there was one), queued behind this file's own next blocks. */
	if (order != LOOKAHEAD_NONE && !damaged)
		prefetch_next_files(fs, of, order);
	if (slots != stack_slots) {
		free(slots); free(fallback); free(iov);
	}
out:
	open_file_put(of);
}

/* Where SEEK_DATA/SEEK_HOLE from `off` lands in `of`, or -1 and *err. */
static off_t seek_in(struct vbfs_fs *fs, struct open_file *of, off_t off, int whence, int *err)
{
	uint32_t bs = fs->meta->block_size;
	uint64_t found;
	if (of->unindexed) {
		off_t r = lseek(of->fd, off, whence);
		*err = errno;
		return r;
	}
	*err = EINVAL;
	if (off < 0)
		return -1;
	*err = ENXIO;
	if ((uint64_t)off >= of->e.size)
		return -1;
	if (!(of->e.flags & VBFS_F_HOLES))
		return whence == SEEK_DATA ? off : (off_t)of->e.size;
	uint64_t nblocks = vbfs_nblocks(of->e.size, bs);
	vbfs_txn *t = txn_get(fs);
	*err = EIO;
	if (!t)
		return -1;
	vbfs_err verr = vbfs_txn_seek_block(t, vbfs_entry_data_id(&of->e), nblocks,
					    (uint64_t)off / bs, whence == SEEK_HOLE, &found);
	txn_put(t);
	if (verr)
		return -1;
	*err = ENXIO;
	if (found == nblocks)   /* no more data: ENXIO; no more holes: the end */
		return whence == SEEK_DATA ? -1 : (off_t)of->e.size;
	uint64_t at = found * bs > (uint64_t)off ? found * bs : (uint64_t)off;
	return (off_t)at;
}

/*
 * SEEK_DATA / SEEK_HOLE from the index's hole map, so cp, tar -S, rsync -S
 * and du see a sparse file's holes and skip them.  Block-granular: a
 * block that was partly hole is data.  Whatever a reader then reads is
 * verified as usual (a hole block served as zeros only where the store
 * still has a hole, or its bytes verify).
 */
static void vbfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			  struct fuse_file_info *fi)
{
	struct vbfs_fs *fs = fs_of(req);
	int err = 0;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return (void)fuse_reply_err(req, EINVAL);
	/* The handle from OPEN, or (no_open) the table's: with a reference. */
	struct open_file *of = read_file_of(fs, ino, fi, &err);
	if (!of)
		return (void)fuse_reply_err(req, err);
	off_t at = seek_in(fs, of, off, whence, &err);
	if (at < 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_lseek(req, at);
	open_file_put(of);
}

/* ---- statfs, xattrs ------------------------------------------------------------ */

static void vbfs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vbfs_fs *fs = fs_of(req);
	struct statvfs sv;
	(void)ino;
	if (fstatvfs(fs->store_fd, &sv) < 0)
		return (void)fuse_reply_err(req, errno);
	sv.f_files = fs->meta->entries;
	sv.f_ffree = 0;
	sv.f_favail = 0;
	sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* The counters are read with getfattr; listxattr does not show them, so
 * cp -a and rsync -X never copy them and nothing is added to the tree.
 *
 * The index records no extended attributes, ACLs or security labels, so
 * names outside the user namespace (security.selinux, system.posix_acl_*,
 * trusted.*) are "not supported" rather than "absent": ls -l asks for a
 * label and an ACL of every entry, the kernel caches neither answer, and
 * ls stops asking a filesystem that said EOPNOTSUPP once, but asks again
 * for each file after ENODATA (two round trips per entry of ls -lR). */
static void vbfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct vbfs_fs *fs = fs_of(req);
	char *value = NULL;
	/* Where the store and the index live is the owner's business: with
	 * allow_other, other users see the counters but not the paths. */
	uid_t uid = fuse_req_ctx(req)->uid;
	bool owner = uid == 0 || uid == getuid();
	(void)ino;
	if (strncmp(name, XATTR_USER_PREFIX, strlen(XATTR_USER_PREFIX)))
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	if (!strcmp(name, XATTR_STATS))
		value = sink_stats_json(fs, owner);
	else if (!strcmp(name, XATTR_INDEX) && !owner)
		return (void)fuse_reply_err(req, EACCES);
	else if (!strcmp(name, XATTR_INDEX))
		value = strdup(fs->index_path);
	else
		return (void)fuse_reply_err(req, ENODATA);
	if (!value)
		return (void)fuse_reply_err(req, ENOMEM);
	size_t len = strlen(value);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
	free(value);
}

static void vbfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

/* ---- no write handlers ---------------------------------------------------
 * The mount is made read-only ("-o ro", fs/main.c), so the kernel refuses
 * every writing call (create, mkdir, unlink, rename, link, symlink, mknod,
 * setattr, setxattr, removexattr, fallocate, write) with EROFS before it
 * becomes a FUSE request; the daemon never sees one.  Were the mount
 * remounted read-write by root (mount -i -o remount,rw), those requests
 * get libfuse's ENOSYS (which the kernel turns into EOPNOTSUPP for xattrs
 * and fallocate, EPERM for link) and the store is still never written:
 * open() for writing is refused with EROFS in vbfs_op_open, the one handler
 * a writer reaches on either kind of mount.  Checked by hand: touch, mkdir,
 * chmod, setfattr, truncate, mv and ln all fail after such a remount.
 */

/* The whole filesystem at a glance. */
const struct fuse_lowlevel_ops vbfs_ops = {
	.init        = vbfs_op_init,
	.lookup      = vbfs_op_lookup,
	.getattr     = vbfs_op_getattr,
	.readlink    = vbfs_op_readlink,
	.opendir     = vbfs_op_opendir,
	.readdir     = vbfs_op_readdir,
	.readdirplus = vbfs_op_readdirplus,
	.open        = vbfs_op_open,
	.read        = vbfs_op_read,
	.release     = vbfs_op_release,
	.lseek       = vbfs_op_lseek,
	.statfs      = vbfs_op_statfs,
	.getxattr    = vbfs_op_getxattr,
	.listxattr   = vbfs_op_listxattr,
};
