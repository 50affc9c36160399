/*
 * reuse.c - the previous snapshot's digests, found by store inode (see
 * reuse.h for exactly what is trusted).  The old index is opened read-only
 * through vbfs_index_open(), or (in place) read in a read transaction on
 * the build's own environment begun before the build writes; either way
 * its root digest is checked before any of its digests is copied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "index_internal.h"
#include "reuse.h"

struct reuse {
	vbfs_index *idx;            /* --reuse OLD_INDEX */
	vbfs_txn *txn;
	MDB_txn *own;               /* in place: the index as it was before this build */
	MDB_txn *src;               /* where the digests are read: txn's or own */
	MDB_dbi src_blocks;
	uint32_t block_size;
	struct reuse_file *v;       /* sorted by (dev, ino) */
	size_t n, cap;
	vbfs_err err;
};

static int cmp_file(const void *a, const void *c)
{
	const struct reuse_file *x = a, *y = c;
	if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
	return 0;
}

static int collect(void *ctx, const struct vbfs_entry *e)
{
	struct reuse *r = ctx;
	if (e->type != VBFS_T_REG || e->link ||
	    (e->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)))
		return 0;   /* only files that hold good digests of their own */
	struct reuse_file *v = vbfs_grow(r->v, &r->cap, r->n, sizeof *v, 1024);
	if (!v) { r->err = VBFS_ERR_NOMEM; return 1; }
	r->v = v;
	struct reuse_file *f = &r->v[r->n];
	*f = (struct reuse_file){ .dev = e->store_dev, .ino = e->store_ino, .size = e->size,
		.data_id = e->id, .mtime_sec = e->mtime_sec, .mtime_nsec = e->mtime_nsec,
		.ctime_sec = e->store_ctime_sec, .ctime_nsec = e->store_ctime_nsec,
		.nlink = e->nlink, .flags = e->flags };
	memcpy(f->file_digest, e->file_digest, VBFS_DIGEST_LEN);
	if (!(f->path = strndup(e->path, e->path_len))) { r->err = VBFS_ERR_NOMEM; return 1; }
	r->n++;
	return 0;
}

vbfs_err reuse_open(const char *old_index, struct reuse **out, char why[VBFS_WHY_LEN])
{
	struct reuse *r = calloc(1, sizeof *r);
	vbfs_err err;
	*out = NULL;
	if (!r)
		return VBFS_ERR_NOMEM;
	if ((err = vbfs_index_open(old_index, NULL, &r->idx, why))) {
		char inner[VBFS_WHY_LEN];
		snprintf(inner, sizeof inner, "%s", why[0] ? why : vbfs_strerror(err));
		vbfs_whyf(why, "--reuse %s: %s", old_index, inner);
		free(r);
		return err;
	}
	if ((err = vbfs_txn_begin(r->idx, &r->txn)) ||
	    (err = vbfs_txn_foreach(r->txn, collect, r)) || (err = r->err)) {
		vbfs_whyf(why, "--reuse %s: reading the index: %s", old_index, vbfs_strerror(err));
		reuse_close(r);
		return err;
	}
	r->src = r->txn->txn;
	r->src_blocks = r->idx->db.blocks;
	r->block_size = vbfs_index_meta(r->idx)->block_size;
	if (r->n)
		qsort(r->v, r->n, sizeof *r->v, cmp_file);
	*out = r;
	return VBFS_OK;
}

vbfs_err reuse_open_in_place(MDB_env *env, struct reuse **out)
{
	MDB_txn *t0;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct idx_dbs db;
	struct vbfs_meta m;
	struct vbfs_entry e;
	uint8_t root[VBFS_DIGEST_LEN];
	char why[VBFS_WHY_LEN];
	struct reuse *r;
	*out = NULL;
	/* The databases' handles first, in a transaction of their own: a
	 * handle opened in a read transaction serves later ones once it ends. */
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &t0))
		return VBFS_OK;
	if (idx_open_dbs(t0, false, &db, why)) {
		mdb_txn_abort(t0);
		return VBFS_OK;   /* a new index: nothing to reuse */
	}
	if (mdb_txn_commit(t0) || !(r = calloc(1, sizeof *r)))
		return VBFS_OK;
	/* Only an index whose root digest holds lends its digests. */
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &r->own) || idx_read_meta(r->own, &db, &m, why) ||
	    idx_root_digest(r->own, &db, false, root, why) ||
	    memcmp(root, m.root_digest, VBFS_DIGEST_LEN) ||
	    mdb_cursor_open(r->own, db.inodes, &cur))
		goto none;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !r->err;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (vbfs_record_decode(v.mv_data, v.mv_size, &e) == VBFS_OK)
			collect(r, &e);
	mdb_cursor_close(cur);
	if (r->err) {
		vbfs_err err = r->err;
		reuse_close(r);
		return err;
	}
	r->src = r->own;
	r->src_blocks = db.blocks;
	r->block_size = m.block_size;
	if (r->n)
		qsort(r->v, r->n, sizeof *r->v, cmp_file);
	*out = r;
	return VBFS_OK;
none:
	reuse_close(r);
	return VBFS_OK;
}

const struct vbfs_meta *reuse_meta(const struct reuse *r)
{
	return vbfs_index_meta(r->idx);
}

uint32_t reuse_block_size(const struct reuse *r)
{
	return r->block_size;
}

const struct reuse_file *reuse_find(const struct reuse *r, const struct stat *st,
				    const char *path, bool need_file_digest)
{
	struct reuse_file key = { .dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino };
	/* Records without a device (older indexes) sort first: look there too. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			key.dev = 0;
		const struct reuse_file *hit = r->n ? bsearch(&key, r->v, r->n, sizeof *r->v, cmp_file) : NULL;
		if (!hit)
			continue;
		while (hit > r->v && !cmp_file(hit - 1, &key))
			hit--;
		for (; hit < r->v + r->n && !cmp_file(hit, &key); hit++) {
			if (hit->size != (uint64_t)st->st_size ||
			    hit->mtime_sec != st->st_mtim.tv_sec ||
			    hit->mtime_nsec != (uint32_t)st->st_mtim.tv_nsec)
				continue;
			/* link()/unlink() move the ctime: trust it only when
			 * the link count is the one recorded. */
			if (hit->nlink == (uint32_t)st->st_nlink &&
			    (hit->ctime_sec != st->st_ctim.tv_sec ||
			     hit->ctime_nsec != (uint32_t)st->st_ctim.tv_nsec))
				continue;
			if (!hit->dev && strcmp(hit->path, path))
				continue;
			if (need_file_digest && !(hit->flags & VBFS_F_FILE_DIGEST))
				continue;
			return hit;
		}
	}
	return NULL;
}

vbfs_err reuse_copy(const struct reuse *r, const struct reuse_file *f, MDB_txn *txn,
		    MDB_dbi blocks, uint64_t id, char why[VBFS_WHY_LEN])
{
	MDB_cursor *cur;
	uint8_t key[16];
	MDB_val k = { 16, key }, v;
	int rc;
	idx_be64(key, f->data_id);
	idx_be64(key + 8, 0);
	if ((rc = mdb_cursor_open(r->src, r->src_blocks, &cur)))
		return idx_lmdb_err(rc, "--reuse: open cursor", why);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 16 || idx_get_be64(k.mv_data) != f->data_id)
			break;
		uint8_t nk[16];
		idx_be64(nk, id);
		memcpy(nk + 8, (const uint8_t *)k.mv_data + 8, 8);
		MDB_val dk = { 16, nk };
		if ((rc = mdb_put(txn, blocks, &dk, &v, 0))) {
			mdb_cursor_close(cur);
			return idx_lmdb_err(rc, "write reused digests", why);
		}
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? idx_lmdb_err(rc, "--reuse: read digests", why) : VBFS_OK;
}

void reuse_close(struct reuse *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].path);
	free(r->v);
	if (r->txn)
		vbfs_txn_end(r->txn);
	if (r->own)
		mdb_txn_abort(r->own);
	if (r->idx)
		vbfs_index_close(r->idx);
	free(r);
}
