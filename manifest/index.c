/*
 * index.c - the read side of the index: open it (a private copy, checked
 * for format, root digest, signature, backup id and age), and look things
 * up in read-only transactions.
 *
 * Threads: the environment is opened with MDB_NOTLS, so a vbfs_txn is not
 * tied to the thread that began it; each thread still uses its own txn
 * (LMDB: a transaction is used by one thread at a time).  The mount keeps
 * one per worker thread and resets/renews it around each request.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "index_internal.h"

vbfs_err idx_lmdb_err(int rc, const char *what, char why[VBFS_WHY_LEN])
{
	if (why)
		vbfs_whyf(why, "%s: %s", what, mdb_strerror(rc));
	if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_VERSION_MISMATCH || rc == MDB_BAD_TXN || rc == MDB_INCOMPATIBLE)
		return VBFS_ERR_NOTINDEX;
	return VBFS_ERR_LMDB;
}

vbfs_err idx_open_dbs(MDB_txn *txn, bool create, struct idx_dbs *db,
		      char why[VBFS_WHY_LEN])
{
	static const char *const names[] = { "meta", "inodes", "dirents", "blocks" };
	MDB_dbi *dbis[] = { &db->meta, &db->inodes, &db->dirents, &db->blocks };
	for (int i = 0; i < 4; i++) {
		int rc = mdb_dbi_open(txn, names[i], create ? MDB_CREATE : 0, dbis[i]);
		if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
			vbfs_whyf(why, "not a vbfs index (no '%s' database)", names[i]);
			return VBFS_ERR_NOTINDEX;
		}
		if (rc)
			return idx_lmdb_err(rc, "open database", why);
	}
	return VBFS_OK;
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *v)
{
	MDB_val k = { strlen(key), (void *)key };
	return mdb_get(txn, dbi, &k, v);
}

static int meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
{
	MDB_val v;
	int rc = meta_get(txn, dbi, key, &v);
	if (rc)
		return rc;
	if (v.mv_size != 8)
		return MDB_INVALID;
	const uint8_t *p = v.mv_data;
	*out = 0;
	for (int i = 7; i >= 0; i--) *out = *out << 8 | p[i];
	return 0;
}

static int meta_str(MDB_txn *txn, MDB_dbi dbi, const char *key, char *out, size_t cap)
{
	MDB_val v;
	int rc = meta_get(txn, dbi, key, &v);
	if (rc)
		return rc;
	if (v.mv_size >= cap || memchr(v.mv_data, '\0', v.mv_size))
		return MDB_INVALID;
	memcpy(out, v.mv_data, v.mv_size);
	out[v.mv_size] = '\0';
	return 0;
}

vbfs_err idx_read_meta(MDB_txn *txn, const struct idx_dbs *db, struct vbfs_meta *m,
		       char why[VBFS_WHY_LEN])
{
	uint64_t version = 0, bs = 0, v;
	MDB_val val;
	memset(m, 0, sizeof *m);
	int rc = meta_u64(txn, db->meta, "format_version", &version);
	if (rc) {
		vbfs_whyf(why, "not a vbfs index (no format version)");
		return VBFS_ERR_NOTINDEX;
	}
	if (version > VBFS_FORMAT_VERSION) {
		vbfs_whyf(why, "index format %llu is newer than this vbfs "
			 "(reads format %u): upgrade vbfs",
			 (unsigned long long)version, VBFS_FORMAT_VERSION);
		return VBFS_ERR_VERSION;
	}
	m->format_version = (uint32_t)version;
	if (meta_u64(txn, db->meta, "block_size", &bs) || bs < VBFS_BLOCK_MIN ||
	    bs > VBFS_BLOCK_MAX || (bs & (bs - 1))) {
		vbfs_whyf(why, "index damaged: invalid block size");
		return VBFS_ERR_FORMAT;
	}
	m->block_size = (uint32_t)bs;
	if (meta_str(txn, db->meta, "hash", m->hash, sizeof m->hash) ||
	    strcmp(m->hash, "sha256")) {
		vbfs_whyf(why, "index uses an unknown hash algorithm");
		return VBFS_ERR_FORMAT;
	}
	meta_str(txn, db->meta, "backup_id", m->backup_id, sizeof m->backup_id);
	if (!meta_u64(txn, db->meta, "created", &v)) m->created = (int64_t)v;
	if (!meta_u64(txn, db->meta, "updated", &v)) m->updated = (int64_t)v;
	meta_u64(txn, db->meta, "entries", &m->entries);
	meta_u64(txn, db->meta, "files", &m->files);
	meta_u64(txn, db->meta, "blocks", &m->blocks);
	meta_u64(txn, db->meta, "bytes", &m->bytes);
	meta_u64(txn, db->meta, "next_id", &m->next_id);
	meta_u64(txn, db->meta, "store_inodes", &m->store_inodes);   /* absent: 0 */
	if (meta_get(txn, db->meta, IDX_META_ROOT, &val) == 0 && val.mv_size == VBFS_DIGEST_LEN)
		memcpy(m->root_digest, val.mv_data, VBFS_DIGEST_LEN);
	else {
		vbfs_whyf(why, "index damaged: no root digest");
		return VBFS_ERR_ROOT;
	}
	if (meta_get(txn, db->meta, IDX_META_SIG, &val) == 0) {
		if (val.mv_size != sizeof m->signature) {
			vbfs_whyf(why, "index damaged: malformed signature");
			return VBFS_ERR_SIGNATURE;
		}
		memcpy(m->signature, val.mv_data, sizeof m->signature);
		m->signed_ = true;
	}
	return VBFS_OK;
}

/* Is `dir` plausibly an index?  Gives the clear message before LMDB does. */
static vbfs_err check_dir(const char *dir, char why[VBFS_WHY_LEN])
{
	struct stat st;
	char data[PATH_MAX];
	if (stat(dir, &st) < 0) {
		vbfs_whyf(why, "%s: %s", dir, strerror(errno));
		return VBFS_ERR_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		vbfs_whyf(why, "%s: not a directory (an index is a directory)", dir);
		return VBFS_ERR_NOTINDEX;
	}
	snprintf(data, sizeof data, "%s/data.mdb", dir);
	if (stat(data, &st) < 0) {
		/* Only a missing data.mdb says "not an index": one we may not
		 * read (EACCES) is an index this user cannot open. */
		if (errno != ENOENT) {
			vbfs_whyf(why, "%s: %s", data, strerror(errno));
			return VBFS_ERR_IO;
		}
		vbfs_whyf(why, "%s: not a vbfs index (no data.mdb; "
			 "build one with 'vbfsctl build')", dir);
		return VBFS_ERR_NOTINDEX;
	}
	if (st.st_size < 2 * 4096) {
		vbfs_whyf(why, "%s: not a vbfs index (data.mdb is truncated)", dir);
		return VBFS_ERR_NOTINDEX;
	}
	/* LMDB's meta page: a 16-byte page header, then mm_magic.  Checked
	 * before mdb_env_open, which would create lock.mdb in the directory. */
	FILE *f = fopen(data, "rb");
	uint8_t head[20];
	bool ok = f && fread(head, 1, sizeof head, f) == sizeof head;
	if (f)
		fclose(f);
	uint32_t magic = ok ? (uint32_t)head[16] | (uint32_t)head[17] << 8 |
			      (uint32_t)head[18] << 16 | (uint32_t)head[19] << 24 : 0;
	if (magic != 0xBEEFC0DEu) {
		vbfs_whyf(why, "%s: not a vbfs index (data.mdb is not an LMDB "
			 "database)", dir);
		return VBFS_ERR_NOTINDEX;
	}
	return VBFS_OK;
}

vbfs_err idx_check_size(MDB_env *env, const char *dir, char why[VBFS_WHY_LEN])
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	char data[PATH_MAX];
	/* LMDB maps the file and trusts its meta page: a data.mdb cut short
	 * (a partial copy, a full disk) would SIGBUS us on the first page
	 * past its end.  Refuse it instead. */
	snprintf(data, sizeof data, "%s/data.mdb", dir);
	if (mdb_env_info(env, &info) || mdb_env_stat(env, &st) || stat(data, &fst) < 0)
		return VBFS_OK;   /* nothing to compare: let LMDB speak */
	uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fst.st_size < need) {
		vbfs_whyf(why, "%s: index damaged: data.mdb is truncated "
			 "(%llu of %llu bytes)", dir, (unsigned long long)fst.st_size,
			 (unsigned long long)need);
		return VBFS_ERR_NOTINDEX;
	}
	return VBFS_OK;
}

vbfs_err idx_env_open_readonly(const char *dir, MDB_env **out, char why[VBFS_WHY_LEN])
{
	/* MDB_NOLOCK fallback: an index on read-only media (an off-site copy)
	 * has no writable lock file; nobody writes it while we read it. */
	static const unsigned flagsets[] = { MDB_RDONLY | MDB_NOTLS,
					     MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK };
	int rc = 0;
	for (int i = 0; i < 2; i++) {
		MDB_env *env;
		if ((rc = mdb_env_create(&env)))
			return idx_lmdb_err(rc, "create LMDB environment", why);
		mdb_env_set_maxdbs(env, 8);
		mdb_env_set_maxreaders(env, 1024);
		rc = mdb_env_open(env, dir, flagsets[i], 0600);
		if (rc == 0) {
			vbfs_err err = idx_check_size(env, dir, why);
			if (err) {
				mdb_env_close(env);
				return err;
			}
			*out = env;
			return VBFS_OK;
		}
		mdb_env_close(env);
		if (rc != EACCES && rc != EROFS)
			break;
	}
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED) {
		vbfs_whyf(why, "%s: not a vbfs index (data.mdb is not an LMDB "
			 "database: %s)", dir, mdb_strerror(rc));
		return VBFS_ERR_NOTINDEX;
	}
	vbfs_whyf(why, "%s: cannot open index: %s", dir, mdb_strerror(rc));
	return rc == ENOENT || rc == EACCES ? VBFS_ERR_IO : VBFS_ERR_LMDB;
}

/* What the caller asked of the index beyond its root digest: a signature
 * by its key, its backup id, its age.  The backup id and the build time
 * are in the 'meta' database, which the root digest covers, so a signed
 * index cannot be relabelled without breaking its signature. */
static vbfs_err check_expectations(const char *dir, const struct vbfs_meta *m,
				   const uint8_t root[VBFS_DIGEST_LEN],
				   const struct vbfs_index_expect *x, char why[VBFS_WHY_LEN])
{
	vbfs_err err;
	if (x->verify_key) {
		if (!m->signed_) {
			vbfs_whyf(why, "%s: index is not signed, but a verify key was given", dir);
			return VBFS_ERR_SIGNATURE;
		}
		if ((err = idx_verify_signature(x->verify_key, root, m->signature, why)))
			return err;
	}
	if (x->backup_id && strcmp(x->backup_id, m->backup_id)) {
		vbfs_whyf(why, "%s: index is for backup id '%s', expected '%s'", dir,
			  m->backup_id, x->backup_id);
		return VBFS_ERR_EXPECT;
	}
	if (x->max_age > 0) {
		double age = (double)(vbfs_now() - m->updated);
		if (!m->updated || age > x->max_age) {
			char when[32];
			vbfs_rfc3339(m->updated, when);
			vbfs_whyf(why, "%s: index was built %s (%.0f s ago), older than the "
				  "maximum age of %.0f s", dir, when, age, x->max_age);
			return VBFS_ERR_EXPECT;
		}
	}
	return VBFS_OK;
}

vbfs_err vbfs_index_open(const char *dir, const char *verify_key,
			 vbfs_index **out, char why[VBFS_WHY_LEN])
{
	struct vbfs_index_expect x = { .verify_key = verify_key };
	return vbfs_index_open_expect(dir, &x, out, why);
}

vbfs_err vbfs_index_open_expect(const char *dir, const struct vbfs_index_expect *x,
				vbfs_index **out, char why[VBFS_WHY_LEN])
{
	vbfs_index *idx = calloc(1, sizeof *idx);
	MDB_txn *txn = NULL;
	uint8_t root[VBFS_DIGEST_LEN];
	vbfs_err err;
	int rc;

	*out = NULL;
	if (!idx)
		return VBFS_ERR_NOMEM;
	if ((err = check_dir(dir, why)))
		goto fail;
	idx->path = realpath(dir, NULL);
	if (!idx->path) {
		err = VBFS_ERR_NOMEM;
		goto fail;
	}
	/* From here on only the private copy is read: `root` is its digest,
	 * computed by the probe that walked it (snapshot.c). */
	if ((err = idx_snapshot_open(dir, &idx->env, root, why)))
		goto fail;
	if ((rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn))) {
		err = idx_lmdb_err(rc, "begin read transaction", why);
		goto fail;
	}
	if ((err = idx_open_dbs(txn, false, &idx->db, why)))
		goto fail;
	/* Commit, not abort: the DBI handles then stay open for every txn. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		err = idx_lmdb_err(rc, "commit read transaction", why);
		goto fail;
	}
	/* The copy holds one snapshot and nobody writes it: this txn sees the
	 * bytes the probe hashed. */
	if ((rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &idx->snap))) {
		err = idx_lmdb_err(rc, "begin read transaction", why);
		goto fail;
	}
	if ((err = idx_read_meta(idx->snap, &idx->db, &idx->meta, why)))
		goto fail;
	if (memcmp(root, idx->meta.root_digest, VBFS_DIGEST_LEN)) {
		vbfs_whyf(why, "%s: index damaged: root digest mismatch", dir);
		err = VBFS_ERR_ROOT;
		goto fail;
	}
	if ((err = check_expectations(dir, &idx->meta, root, x, why)))
		goto fail;
	pthread_mutex_init(&idx->snap_lock, NULL);
	idx->snap_lock_ready = true;
	*out = idx;
	return VBFS_OK;
fail:
	if (txn)
		mdb_txn_abort(txn);
	vbfs_index_close(idx);
	return err;
}

void vbfs_index_close(vbfs_index *idx)
{
	if (!idx)
		return;
	if (idx->snap)
		mdb_txn_abort(idx->snap);
	if (idx->snap_lock_ready)
		pthread_mutex_destroy(&idx->snap_lock);
	if (idx->env)
		mdb_env_close(idx->env);
	free(idx->path);
	free(idx);
}

const struct vbfs_meta *vbfs_index_meta(const vbfs_index *idx) { return &idx->meta; }
const char *vbfs_index_path(const vbfs_index *idx) { return idx->path; }

/* ---- transactions ------------------------------------------------------- */

/* A vbfs_txn is a turn at the index's one verified snapshot (see
 * index_internal.h): begin/renew take the turn, reset/end give it back.
 * Never hold two at once on one thread. */
vbfs_err vbfs_txn_begin(vbfs_index *idx, vbfs_txn **out)
{
	vbfs_txn *t = calloc(1, sizeof *t);
	if (!t)
		return VBFS_ERR_NOMEM;
	t->idx = idx;
	t->txn = idx->snap;
	pthread_mutex_lock(&idx->snap_lock);
	t->locked = true;
	*out = t;
	return VBFS_OK;
}

void vbfs_txn_reset(vbfs_txn *t)
{
	if (t->locked) {
		t->locked = false;
		pthread_mutex_unlock(&t->idx->snap_lock);
	}
}

vbfs_err vbfs_txn_renew(vbfs_txn *t)
{
	if (!t->locked) {
		pthread_mutex_lock(&t->idx->snap_lock);
		t->locked = true;
	}
	return VBFS_OK;
}

void vbfs_txn_end(vbfs_txn *t)
{
	if (!t)
		return;
	vbfs_txn_reset(t);
	free(t);
}

/* What an mdb_get or cursor step for inode `id` found: the decoded record,
 * or why not (a record under another id's key is damage). */
static vbfs_err record_result(int rc, const MDB_val *v, uint64_t id, struct vbfs_entry *e)
{
	if (rc == MDB_NOTFOUND)
		return VBFS_ERR_NOTFOUND;
	if (rc)
		return VBFS_ERR_LMDB;
	vbfs_err err = vbfs_record_decode(v->mv_data, v->mv_size, e);
	if (!err && e->id != id)
		return VBFS_ERR_FORMAT;
	return err;
}

vbfs_err vbfs_txn_get(vbfs_txn *t, uint64_t id, struct vbfs_entry *e)
{
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	idx_be64(key, id);
	int rc = mdb_get(t->txn, t->idx->db.inodes, &k, &v);
	return record_result(rc, &v, id, e);
}

vbfs_err vbfs_txn_lookup(vbfs_txn *t, uint64_t parent, const char *name,
			 size_t name_len, struct vbfs_entry *e)
{
	uint8_t stackkey[8 + 256], *key = stackkey;
	vbfs_err err;
	if (name_len > 255)
		return VBFS_ERR_NOTFOUND;   /* NAME_MAX: nothing that long exists */
	idx_be64(key, parent);
	memcpy(key + 8, name, name_len);
	MDB_val k = { 8 + name_len, key }, v;
	int rc = mdb_get(t->txn, t->idx->db.dirents, &k, &v);
	if (rc == MDB_NOTFOUND)
		return VBFS_ERR_NOTFOUND;
	if (rc)
		return VBFS_ERR_LMDB;
	if (v.mv_size != 8)
		return VBFS_ERR_FORMAT;
	err = vbfs_txn_get(t, idx_get_be64(v.mv_data), e);
	if (!err && e->parent != parent)
		return VBFS_ERR_FORMAT;
	return err;
}

vbfs_err vbfs_txn_lookup_path(vbfs_txn *t, const char *path, struct vbfs_entry *e)
{
	vbfs_err err = vbfs_txn_get(t, VBFS_ROOT_ID, e);
	const char *p = path;
	while (!err && *p) {
		while (*p == '/') p++;
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		if (n == 0)
			break;
		if (!(n == 1 && *p == '.')) {
			if (e->type != VBFS_T_DIR)
				return VBFS_ERR_NOTFOUND;
			err = vbfs_txn_lookup(t, e->id, p, n, e);
		}
		p = end;
	}
	return err;
}

vbfs_err vbfs_txn_digest(vbfs_txn *t, uint64_t id, uint64_t block,
			 uint8_t out[VBFS_DIGEST_LEN])
{
	uint8_t key[16];
	MDB_val k = { 16, key }, v;
	idx_be64(key, id);
	idx_be64(key + 8, block / VBFS_RUN_BLOCKS);
	int rc = mdb_get(t->txn, t->idx->db.blocks, &k, &v);
	if (rc == MDB_NOTFOUND)
		return VBFS_ERR_NOTFOUND;
	if (rc)
		return VBFS_ERR_LMDB;
	size_t at = (block % VBFS_RUN_BLOCKS) * VBFS_DIGEST_LEN;
	if (v.mv_size % VBFS_DIGEST_LEN || at + VBFS_DIGEST_LEN > v.mv_size)
		return VBFS_ERR_FORMAT;
	memcpy(out, (const uint8_t *)v.mv_data + at, VBFS_DIGEST_LEN);
	return VBFS_OK;
}

/* The hole bitmap of one run; all zeros (no holes) when none is stored. */
static vbfs_err hole_map(vbfs_txn *t, uint64_t id, uint64_t run, uint8_t map[IDX_HOLE_MAP])
{
	uint8_t key[16];
	MDB_val k = { 16, key }, v;
	idx_be64(key, id);
	idx_be64(key + 8, run | IDX_HOLE_RUN);
	int rc = mdb_get(t->txn, t->idx->db.blocks, &k, &v);
	if (rc == MDB_NOTFOUND) {
		memset(map, 0, IDX_HOLE_MAP);
		return VBFS_OK;
	}
	if (rc)
		return VBFS_ERR_LMDB;
	if (v.mv_size != IDX_HOLE_MAP)
		return VBFS_ERR_FORMAT;
	memcpy(map, v.mv_data, IDX_HOLE_MAP);
	return VBFS_OK;
}

vbfs_err vbfs_txn_hole(vbfs_txn *t, uint64_t id, uint64_t block, bool *hole)
{
	uint8_t map[IDX_HOLE_MAP];
	uint64_t i = block % VBFS_RUN_BLOCKS;
	vbfs_err err = hole_map(t, id, block / VBFS_RUN_BLOCKS, map);
	*hole = !err && (map[i / 8] >> (i % 8) & 1);
	return err;
}

vbfs_err vbfs_txn_seek_block(vbfs_txn *t, uint64_t id, uint64_t nblocks, uint64_t from,
			     bool want_hole, uint64_t *out)
{
	uint8_t map[IDX_HOLE_MAP];
	uint64_t b = from;
	while (b < nblocks) {
		uint64_t run = b / VBFS_RUN_BLOCKS;
		vbfs_err err = hole_map(t, id, run, map);
		if (err)
			return err;
		uint64_t end = (run + 1) * VBFS_RUN_BLOCKS;
		for (; b < end && b < nblocks; b++) {
			uint64_t i = b % VBFS_RUN_BLOCKS;
			if ((bool)(map[i / 8] >> (i % 8) & 1) == want_hole) {
				*out = b;
				return VBFS_OK;
			}
		}
	}
	*out = nblocks;
	return VBFS_OK;
}

/* The end of a cursor walk: a cursor error other than the walk's natural
 * end (MDB_NOTFOUND) is an LMDB error, unless the walk already failed. */
static vbfs_err cursor_done(MDB_cursor *cur, int rc, vbfs_err err)
{
	if (rc && rc != MDB_NOTFOUND && !err)
		err = VBFS_ERR_LMDB;
	mdb_cursor_close(cur);
	return err;
}

/*
 * The record of child `id` through a cursor on the inodes table.  A build
 * numbers a directory's children one after another, so the next child is
 * usually the record after the last one: MDB_NEXT, not a search from the
 * root of the tree per entry (a third of the daemon's CPU in a listing).
 * Anything else is looked up by key.  *at is the id under the cursor.
 */
static vbfs_err child_record(MDB_cursor *cur, uint64_t id, uint64_t *at, struct vbfs_entry *e)
{
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc = MDB_NOTFOUND;
	idx_be64(key, id);
	if (*at && *at + 1 == id) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		if (rc == 0 && (k.mv_size != 8 || idx_get_be64(k.mv_data) != id))
			rc = MDB_NOTFOUND;   /* a gap: search for it */
		k = (MDB_val){ 8, key };
	}
	if (rc)
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	*at = rc ? 0 : id;
	return record_result(rc, &v, id, e);
}

vbfs_err vbfs_txn_readdir(vbfs_txn *t, uint64_t parent, uint64_t after,
			  vbfs_entry_fn fn, void *ctx)
{
	MDB_cursor *cur, *rec;
	uint64_t at = 0;
	uint8_t key[8 + 256];
	MDB_val k, v;
	struct vbfs_entry e;
	vbfs_err err = VBFS_OK;
	size_t klen = 8;
	int rc;

	idx_be64(key, parent);
	if (after) {
		/* Resume after the child whose id the kernel handed back. */
		if (vbfs_txn_get(t, after, &e) == VBFS_OK && e.parent == parent) {
			size_t n;
			const char *name = vbfs_entry_name(&e, &n);
			if (n <= 255) {
				memcpy(key + 8, name, n);
				klen += n;
			}
		}
	}
	if (mdb_cursor_open(t->txn, t->idx->db.dirents, &cur))
		return VBFS_ERR_LMDB;
	if (mdb_cursor_open(t->txn, t->idx->db.inodes, &rec)) {
		mdb_cursor_close(cur);
		return VBFS_ERR_LMDB;
	}
	k.mv_size = klen;
	k.mv_data = key;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && after && klen > 8 && k.mv_size == klen && !memcmp(k.mv_data, key, klen))
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 8 || memcmp(k.mv_data, key, 8))
			break;   /* past this directory's children */
		if (k.mv_size == 8)
			continue;   /* never a valid child name */
		if (v.mv_size != 8) {
			err = VBFS_ERR_FORMAT;
			break;
		}
		if ((err = child_record(rec, idx_get_be64(v.mv_data), &at, &e)))
			break;
		if (fn(ctx, &e))
			break;
	}
	mdb_cursor_close(rec);
	return cursor_done(cur, rc, err);
}

vbfs_err vbfs_txn_foreach(vbfs_txn *t, vbfs_entry_fn fn, void *ctx)
{
	MDB_cursor *cur;
	MDB_val k, v;
	struct vbfs_entry e;
	vbfs_err err = VBFS_OK;
	int rc;
	if (mdb_cursor_open(t->txn, t->idx->db.inodes, &cur))
		return VBFS_ERR_LMDB;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if ((err = vbfs_record_decode(v.mv_data, v.mv_size, &e)))
			break;
		if (fn(ctx, &e))
			break;
	}
	return cursor_done(cur, rc, err);
}
