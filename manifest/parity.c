/*
 * parity.c - Reed-Solomon parity with ISA-L: the layout, the encoder that
 * `vbfsctl build --parity` runs, and the erasure decode that rebuilds one
 * damaged block (layout and file formats: parity.h).
 *
 * The digests say exactly which fragments are bad, so every repair is an
 * erasure decode at known positions: M parity fragments rebuild up to M
 * lost fragments of a stripe.  Nothing decoded is believed: the rebuilt
 * block goes through vbfs_block_verify_bytes against the index digest.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <isa-l/erasure_code.h>
#include "index_internal.h"
#include "parity.h"
#include "pool.h"

#define IDX_META_PARITY "parity"

/* ---- the codec ------------------------------------------------------------- */

int parity_codec_init(struct parity_codec *c, int k, int m)
{
	memset(c, 0, sizeof *c);
	c->k = k;
	c->m = m;
	c->matrix = malloc((size_t)(k + m) * (size_t)k);
	c->tables = malloc((size_t)32 * (size_t)k * (size_t)m);
	if (!c->matrix || !c->tables) {
		parity_codec_free(c);
		return -1;
	}
	/* Cauchy: every k rows of it are invertible, so any k good fragments
	 * rebuild the rest (ISA-L's own recommendation for large k). */
	gf_gen_cauchy1_matrix(c->matrix, k + m, k);
	ec_init_tables(k, m, &c->matrix[k * k], c->tables);
	return 0;
}

void parity_codec_free(struct parity_codec *c)
{
	free(c->matrix);
	free(c->tables);
	c->matrix = c->tables = NULL;
}

void parity_encode_update(const struct parity_codec *c, int len, int i,
			  unsigned char *data, unsigned char **parity)
{
	ec_encode_data_update(len, c->k, c->m, i, c->tables, data, parity);
}

int parity_decode(const struct parity_codec *c, int len, unsigned char **frags,
		  const bool *good, int target, unsigned char *out)
{
	int k = c->k, rows[PARITY_MAX_FRAGS], n = 0;
	unsigned char *b, *inv, tables[32 * PARITY_MAX_FRAGS];
	unsigned char *srcs[PARITY_MAX_FRAGS];
	for (int r = 0; r < k + c->m && n < k; r++)
		if (good[r])
			rows[n++] = r;
	if (n < k)
		return -1;
	/* The k good rows of the encode matrix, inverted: row `target` of
	 * the inverse rebuilds data fragment `target` from those k. */
	b = malloc((size_t)k * (size_t)k);
	inv = malloc((size_t)k * (size_t)k);
	if (!b || !inv) {
		free(b);
		free(inv);
		return -1;
	}
	for (int i = 0; i < k; i++) {
		memcpy(&b[i * k], &c->matrix[rows[i] * k], (size_t)k);
		srcs[i] = frags[rows[i]];
	}
	int rc = gf_invert_matrix(b, inv, k);
	if (rc == 0) {
		ec_init_tables(k, 1, &inv[target * k], tables);
		ec_encode_data(len, k, 1, tables, srcs, &out);
	}
	free(b);
	free(inv);
	return rc < 0 ? -1 : 0;
}

/* ---- the layout -------------------------------------------------------------- */

void parity_place(uint64_t pos, uint64_t total, uint32_t k, uint32_t s,
		  struct parity_place *out)
{
	uint64_t group = (uint64_t)k * s;
	uint64_t start = pos / group * group;
	uint64_t n = total - start < group ? total - start : group;
	uint32_t stripes = (uint32_t)((n + k - 1) / k);
	uint64_t q = pos - start;
	out->group_start = start;
	out->nstripes = stripes;
	out->stripe = (uint32_t)(q % stripes);
	out->index = (uint32_t)(q / stripes);
	/* members of stripe j: positions j, j+s, ... below n */
	out->members = (uint32_t)((n - out->stripe + stripes - 1) / stripes);
}

uint64_t parity_nstripes(uint64_t total, uint32_t k, uint32_t s)
{
	uint64_t group = (uint64_t)k * s, full = total / group, rest = total % group;
	return full * s + (rest + k - 1) / k;
}

uint32_t parity_depth(uint32_t m, uint32_t block_size)
{
	uint64_t s = PARITY_GROUP_BYTES / ((uint64_t)m * block_size);
	return s < 1 ? 1 : s > PARITY_S_MAX ? PARITY_S_MAX : (uint32_t)s;
}

int vbfs_parse_parity(const char *s, uint32_t *k, uint32_t *m)
{
	char *end;
	unsigned long kk, mm;
	if (*s < '0' || *s > '9')
		return -1;
	kk = strtoul(s, &end, 10);
	if (*end != '+' || end[1] < '0' || end[1] > '9')
		return -1;
	mm = strtoul(end + 1, &end, 10);
	if (*end || kk < 1 || mm < 1 || kk > 127 || kk + mm > PARITY_MAX_FRAGS)
		return -1;
	*k = (uint32_t)kk;
	*m = (uint32_t)mm;
	return 0;
}

/* ---- the files covered and the two sequences ---------------------------------- */

struct pfile {
	uint64_t id, size;
	char *path;                     /* build only */
};

struct layout {
	uint32_t k, m, s, bs;
	struct pfile *files;
	uint64_t nfiles;
	uint64_t *full_prefix;          /* full blocks of files before file f */
	uint64_t nfull;
	uint64_t *short_order;          /* short position -> file index */
	uint64_t nshort;
	uint64_t nstripes_full, nstripes_short;
	uint64_t *short_offset;         /* parity.dat offset of each short stripe */
	uint64_t dat_size;
};

static uint32_t short_len(const struct layout *l, uint64_t f)
{
	return (uint32_t)(l->files[f].size % l->bs);
}

static const struct layout *sort_ctx;   /* qsort has no context argument */
static int by_short_len(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	uint32_t lx = short_len(sort_ctx, x), ly = short_len(sort_ctx, y);
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return (x > y) - (x < y);
}

static void layout_free(struct layout *l)
{
	for (uint64_t i = 0; l->files && i < l->nfiles; i++)
		free(l->files[i].path);
	free(l->files);
	free(l->full_prefix);
	free(l->short_order);
	free(l->short_offset);
	memset(l, 0, sizeof *l);
}

/* Everything derived from (k, m, s, bs, files): sequences, stripes, offsets. */
static vbfs_err layout_derive(struct layout *l)
{
	static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
	l->full_prefix = malloc((l->nfiles + 1) * sizeof *l->full_prefix);
	l->short_order = malloc((l->nfiles + 1) * sizeof *l->short_order);
	if (!l->full_prefix || !l->short_order)
		return VBFS_ERR_NOMEM;
	l->nfull = l->nshort = 0;
	for (uint64_t f = 0; f < l->nfiles; f++) {
		l->full_prefix[f] = l->nfull;
		l->nfull += l->files[f].size / l->bs;
		if (short_len(l, f))
			l->short_order[l->nshort++] = f;
	}
	l->full_prefix[l->nfiles] = l->nfull;
	pthread_mutex_lock(&sort_lock);
	sort_ctx = l;
	qsort(l->short_order, l->nshort, sizeof *l->short_order, by_short_len);
	pthread_mutex_unlock(&sort_lock);
	l->nstripes_full = parity_nstripes(l->nfull, l->k, l->s);
	l->nstripes_short = parity_nstripes(l->nshort, l->k, l->s);
	if (!(l->short_offset = malloc((l->nstripes_short + 1) * sizeof *l->short_offset)))
		return VBFS_ERR_NOMEM;
	uint64_t off = l->nstripes_full * l->m * l->bs, st = 0;
	for (uint64_t pos = 0; pos < l->nshort; ) {
		struct parity_place pl;
		parity_place(pos, l->nshort, l->k, l->s, &pl);
		/* stripe j's longest member is its first: position start + j */
		for (uint32_t j = 0; j < pl.nstripes; j++) {
			l->short_offset[st++] = off;
			off += (uint64_t)l->m * short_len(l, l->short_order[pl.group_start + j]);
		}
		pos = pl.group_start + (uint64_t)l->k * l->s;
	}
	l->dat_size = off;
	return VBFS_OK;
}

/* Member `pos` of the full sequence: its file and block. */
static uint64_t full_member(const struct layout *l, uint64_t pos, uint64_t *block)
{
	uint64_t lo = 0, hi = l->nfiles;   /* last f with full_prefix[f] <= pos */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (l->full_prefix[mid] <= pos)
			lo = mid;
		else
			hi = mid;
	}
	while (lo + 1 < l->nfiles && l->full_prefix[lo + 1] <= pos)
		lo++;   /* skip files with no full block */
	*block = pos - l->full_prefix[lo];
	return lo;
}

/* Member `pos` of a sequence (the short one with `shorts`): its file
 * index, block and length. */
static uint64_t member_at(const struct layout *l, bool shorts, uint64_t pos, uint64_t *block,
			  uint32_t *len)
{
	uint64_t f;
	if (!shorts) {
		*len = l->bs;
		return full_member(l, pos, block);
	}
	f = l->short_order[pos];
	*block = l->files[f].size / l->bs;
	*len = short_len(l, f);
	return f;
}

static int64_t file_index(const struct layout *l, uint64_t id)
{
	uint64_t lo = 0, hi = l->nfiles;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (l->files[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->nfiles && l->files[lo].id == id ? (int64_t)lo : -1;
}

/* ---- parity.idx ---------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define HDR_LEN (8 + 4 * 4 + 8 + 8)     /* magic, k m s bs, nfiles, dat_size */

static uint64_t total_stripes(const struct layout *l)
{
	return l->nstripes_full + l->nstripes_short;
}

/* ---- building ------------------------------------------------------------------- */

struct builder {
	const struct vbfs_parity_opts *o;
	struct layout l;
	struct parity_codec codec;
	int store_fd, dat_fd;
	uint8_t *digests;               /* total_stripes * m * 32, each slot one task's */
	uint64_t cap;                   /* files allocated */
	uint64_t groups_full;           /* tasks below this: the full sequence's groups */
	pthread_mutex_t lock;           /* guards err and why for the workers */
	volatile int abort;
	vbfs_err err;
	char *why;
};

static int collect(void *ctx, const struct vbfs_entry *e)
{
	struct builder *b = ctx;
	struct layout *l = &b->l;
	if (e->type != VBFS_T_REG || !e->size || (e->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)) ||
	    vbfs_entry_data_id(e) != e->id)
		return 0;   /* a hard link's bytes are its holder's, covered once */
	if (l->nfiles == b->cap) {
		uint64_t cap = b->cap ? 2 * b->cap : 64;
		struct pfile *nf = realloc(l->files, cap * sizeof *nf);
		if (!nf)
			return 1;
		l->files = nf;
		b->cap = cap;
	}
	struct pfile *f = &l->files[l->nfiles];
	if (!(f->path = strndup(e->path, e->path_len)))
		return 1;
	f->id = e->id;
	f->size = e->size;
	l->nfiles++;
	return 0;
}

/* One worker's state: its own file and buffers (tasks run in parallel). */
struct reader {
	int64_t open_file;              /* file index whose fd is open, -1 none */
	int fd;
};

/* Read a member as the store has it now; what cannot be read counts as
 * zeros (a member damaged already costs its stripe one erasure later,
 * never a wrong byte: every rebuilt block is verified). */
static void read_member(struct builder *b, struct reader *rd, uint64_t f, uint64_t block,
			uint32_t len, void *data)
{
	if (rd->open_file != (int64_t)f) {
		if (rd->fd >= 0)
			close(rd->fd);
		struct stat st;   /* type first: a FIFO or device is never opened */
		rd->fd = vbfs_store_open_reg(b->store_fd, b->l.files[f].path, &st);
		rd->open_file = (int64_t)f;
	}
	ssize_t got = rd->fd >= 0 ? vbfs_block_read(rd->fd, data, len, block * b->l.bs) : -1;
	if (got < (ssize_t)len)
		memset((char *)data + (got > 0 ? got : 0), 0, len - (size_t)(got > 0 ? got : 0));
}

static vbfs_err pwrite_all(int fd, const void *p, size_t n, uint64_t off, const char *what,
			   char *why)
{
	if (vbfs_write_all(fd, p, n, (off_t)off) == 0)
		return VBFS_OK;
	vbfs_whyf(why, "write %s: %s", what, strerror(errno));
	return VBFS_ERR_IO;
}

/*
 * Encode one group, a task of the pool: groups are independent (their own
 * stripes, their own place in parity.dat), so the workers encode them in
 * parallel.  Task numbers: the full sequence's groups, then the short's.
 * `buf` is the worker's: s*m accumulators of block size, then one member.
 */
static void encode_group(void *ctx, size_t task, void *buf)
{
	struct builder *b = ctx;
	struct layout *l = &b->l;
	uint64_t group = (uint64_t)l->k * l->s;
	bool shorts = task >= b->groups_full;
	uint64_t total = shorts ? l->nshort : l->nfull;
	uint64_t g = shorts ? task - b->groups_full : task;
	uint64_t start = g * group, n = total - start < group ? total - start : group;
	unsigned char *acc = buf, *data = acc + (size_t)l->s * l->m * l->bs, *ptrs[PARITY_MAX_FRAGS];
	struct reader rd = { .open_file = -1, .fd = -1 };
	struct parity_place pl;
	vbfs_err err = VBFS_OK;
	char why[VBFS_WHY_LEN];

	parity_place(start, total, l->k, l->s, &pl);
	memset(acc, 0, (size_t)pl.nstripes * l->m * l->bs);
	for (uint64_t q = 0; q < n && !b->abort; q++) {
		uint64_t block;
		uint32_t len;
		uint64_t f = member_at(l, shorts, start + q, &block, &len);
		read_member(b, &rd, f, block, len, data);
		uint32_t j = (uint32_t)(q % pl.nstripes);
		for (uint32_t p = 0; p < l->m; p++)
			ptrs[p] = acc + ((size_t)j * l->m + p) * l->bs;
		parity_encode_update(&b->codec, (int)len, (int)(q / pl.nstripes), data, ptrs);
	}
	if (rd.fd >= 0)
		close(rd.fd);
	uint64_t first = g * l->s;   /* the group's first stripe in its sequence */
	for (uint32_t j = 0; j < pl.nstripes && !err && !b->abort; j++) {
		uint64_t stripe = first + j;
		uint64_t no = shorts ? l->nstripes_full + stripe : stripe;
		uint64_t off = shorts ? l->short_offset[stripe] : stripe * l->m * l->bs;
		uint32_t len = shorts ? short_len(l, l->short_order[start + j]) : l->bs;
		for (uint32_t p = 0; p < l->m && !err; p++) {
			unsigned char *frag = acc + ((size_t)j * l->m + p) * l->bs;
			vbfs_sha256(frag, len, b->digests + (no * l->m + p) * VBFS_DIGEST_LEN);
			err = pwrite_all(b->dat_fd, frag, len, off + (uint64_t)p * len, "parity.dat", why);
		}
	}
	if (err) {
		pthread_mutex_lock(&b->lock);
		if (!b->err) {
			b->err = err;
			memcpy(b->why, why, VBFS_WHY_LEN);
		}
		b->abort = 1;
		pthread_mutex_unlock(&b->lock);
	}
}

/* Every group of both sequences, on all cores. */
static vbfs_err encode_all(struct builder *b)
{
	struct layout *l = &b->l;
	uint64_t group = (uint64_t)l->k * l->s;
	struct pool pool;
	b->groups_full = (l->nfull + group - 1) / group;
	size_t ntasks = b->groups_full + (l->nshort + group - 1) / group;
	if (!ntasks)
		return VBFS_OK;
	if (pool_start(&pool, 0, ntasks, ((size_t)l->s * l->m + 1) * l->bs, encode_group, b,
		       &b->abort))
		return VBFS_ERR_NOMEM;
	while (atomic_load(&pool.next) < ntasks) {
		if (b->o->stop && *b->o->stop)
			b->abort = 1;
		usleep(20000);
	}
	pool_join(&pool);
	if (b->o->stop && *b->o->stop)
		return VBFS_ERR_INTERRUPTED;
	return b->err;
}

static vbfs_err write_idx(struct builder *b, const char *path, uint8_t digest[VBFS_DIGEST_LEN])
{
	struct layout *l = &b->l;
	size_t n = HDR_LEN + l->nfiles * 16 + total_stripes(l) * l->m * VBFS_DIGEST_LEN;
	uint8_t *buf = malloc(n), *p = buf;
	vbfs_err err;
	if (!buf)
		return VBFS_ERR_NOMEM;
	memcpy(p, PARITY_MAGIC, 8);
	put_le(p + 8, l->k, 4);
	put_le(p + 12, l->m, 4);
	put_le(p + 16, l->s, 4);
	put_le(p + 20, l->bs, 4);
	put_le(p + 24, l->nfiles, 8);
	put_le(p + 32, l->dat_size, 8);
	p += HDR_LEN;
	for (uint64_t f = 0; f < l->nfiles; f++, p += 16) {
		put_le(p, l->files[f].id, 8);
		put_le(p + 8, l->files[f].size, 8);
	}
	memcpy(p, b->digests, total_stripes(l) * l->m * VBFS_DIGEST_LEN);
	vbfs_sha256(buf, n, digest);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(buf);
		vbfs_whyf(b->why, "%s: %s", path, strerror(errno));
		return VBFS_ERR_IO;
	}
	err = pwrite_all(fd, buf, n, 0, path, b->why);
	if (!err && fsync(fd) < 0) {
		vbfs_whyf(b->why, "fsync %s: %s", path, strerror(errno));
		err = VBFS_ERR_IO;
	}
	close(fd);
	free(buf);
	return err;
}

vbfs_err vbfs_parity_build(const struct vbfs_parity_opts *o, struct vbfs_parity_result *r,
			   char why[VBFS_WHY_LEN])
{
	struct builder b = { .o = o, .store_fd = -1, .dat_fd = -1, .why = why,
			     .lock = PTHREAD_MUTEX_INITIALIZER };
	char dat[PATH_MAX], idx[PATH_MAX], dat_tmp[PATH_MAX], idx_tmp[PATH_MAX];
	uint8_t digest[VBFS_DIGEST_LEN];
	vbfs_index *index = NULL;
	vbfs_txn *t = NULL;
	double start = vbfs_monotonic();
	vbfs_err err;

	memset(r, 0, sizeof *r);
	why[0] = '\0';
	if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
		vbfs_whyf(why, "parity directory %s: %s", o->dir, strerror(errno));
		return VBFS_ERR_IO;
	}
	snprintf(dat, sizeof dat, "%s/parity.dat", o->dir);
	snprintf(idx, sizeof idx, "%s/parity.idx", o->dir);
	snprintf(dat_tmp, sizeof dat_tmp, "%s/parity.dat.tmp", o->dir);
	snprintf(idx_tmp, sizeof idx_tmp, "%s/parity.idx.tmp", o->dir);
	if ((err = vbfs_index_open(o->index, NULL, &index, why)))
		goto out;
	b.l.k = o->k;
	b.l.m = o->m;
	b.l.bs = vbfs_index_meta(index)->block_size;
	if ((uint64_t)(o->k + o->m + 1) * b.l.bs > PARITY_REBUILD_BYTES) {
		/* A rebuild holds a whole stripe in memory, in the mount too. */
		vbfs_whyf(why, "--parity %u+%u: a rebuild would hold %u blocks of %u KiB in "
			  "memory, over %u MiB: choose a smaller K", o->k, o->m, o->k + o->m + 1,
			  b.l.bs >> 10, PARITY_REBUILD_BYTES >> 20);
		err = VBFS_ERR_USAGE;
		goto out;
	}
	b.l.s = parity_depth(o->m, b.l.bs);
	if ((err = vbfs_txn_begin(index, &t)))
		goto out;
	err = vbfs_txn_foreach(t, collect, &b);   /* id order */
	vbfs_txn_end(t);
	if (err || (err = layout_derive(&b.l)))
		goto out;
	if (parity_codec_init(&b.codec, (int)o->k, (int)o->m) ||
	    !(b.digests = malloc(total_stripes(&b.l) * o->m * VBFS_DIGEST_LEN + 1))) {
		err = VBFS_ERR_NOMEM;
		goto out;
	}
	if ((b.store_fd = vbfs_store_open_root(o->store)) < 0) {
		vbfs_whyf(why, "store %s: %s", o->store, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	if ((b.dat_fd = open(dat_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		vbfs_whyf(why, "%s: %s", dat_tmp, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	if ((err = encode_all(&b)))
		goto out;
	if (fsync(b.dat_fd) < 0) {
		vbfs_whyf(why, "fsync %s: %s", dat_tmp, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	if ((err = write_idx(&b, idx_tmp, digest)))
		goto out;
	/* parity.dat first: until parity.idx is renamed and the index records
	 * its digest, an open refuses the pair rather than mixing builds. */
	if (rename(dat_tmp, dat) < 0 || rename(idx_tmp, idx) < 0) {
		vbfs_whyf(why, "rename into %s: %s", o->dir, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	{
		int dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	vbfs_index_close(index);
	index = NULL;
	if ((err = vbfs_index_put_meta(o->index, IDX_META_PARITY, digest, sizeof digest,
				       o->sign_key, why)))
		goto out;
	r->files = b.l.nfiles;
	r->stripes = total_stripes(&b.l);
	r->parity_bytes = b.l.dat_size;
	for (uint64_t f = 0; f < b.l.nfiles; f++)
		r->data_bytes += b.l.files[f].size;
out:
	if (err == VBFS_ERR_INTERRUPTED && !why[0])
		vbfs_whyf(why, "interrupted: the parity was not written");
	if (b.dat_fd >= 0)
		close(b.dat_fd);
	if (err) {
		unlink(dat_tmp);
		unlink(idx_tmp);
	}
	if (b.store_fd >= 0)
		close(b.store_fd);
	vbfs_index_close(index);
	parity_codec_free(&b.codec);
	layout_free(&b.l);
	free(b.digests);
	r->seconds = vbfs_monotonic() - start;
	return err;
}

/* ---- the source ------------------------------------------------------------------ */

struct vbfs_parity {
	vbfs_index *idx;
	struct layout l;
	struct parity_codec codec;
	uint8_t *digests;
	int dat_fd, store_fd;
};

static vbfs_err parse_idx(struct vbfs_parity *p, const uint8_t *buf, size_t n,
			  const char *dir, char *why)
{
	struct layout *l = &p->l;
	const uint8_t *q = buf + HDR_LEN;
	vbfs_err err;
	if (n < HDR_LEN || memcmp(buf, PARITY_MAGIC, 8))
		goto bad;
	l->k = (uint32_t)get_le(buf + 8, 4);
	l->m = (uint32_t)get_le(buf + 12, 4);
	l->s = (uint32_t)get_le(buf + 16, 4);
	l->bs = (uint32_t)get_le(buf + 20, 4);
	l->nfiles = get_le(buf + 24, 8);
	if (l->k < 1 || l->m < 1 || l->k > 127 || l->k + l->m > PARITY_MAX_FRAGS ||
	    l->s < 1 || l->s > PARITY_S_MAX || l->bs != vbfs_index_meta(p->idx)->block_size ||
	    l->nfiles > (n - HDR_LEN) / 16)
		goto bad;
	if (!(l->files = calloc(l->nfiles + 1, sizeof *l->files)))
		return VBFS_ERR_NOMEM;
	for (uint64_t f = 0; f < l->nfiles; f++, q += 16) {
		l->files[f].id = get_le(q, 8);
		l->files[f].size = get_le(q + 8, 8);
		if (f && l->files[f].id <= l->files[f - 1].id)
			goto bad;
	}
	if ((err = layout_derive(l)))
		return err;
	if (n - HDR_LEN - l->nfiles * 16 != total_stripes(l) * l->m * VBFS_DIGEST_LEN ||
	    get_le(buf + 32, 8) != l->dat_size)
		goto bad;
	if (!(p->digests = malloc(total_stripes(l) * l->m * VBFS_DIGEST_LEN + 1)))
		return VBFS_ERR_NOMEM;
	memcpy(p->digests, q, total_stripes(l) * l->m * VBFS_DIGEST_LEN);
	return parity_codec_init(&p->codec, (int)l->k, (int)l->m) ? VBFS_ERR_NOMEM : VBFS_OK;
bad:
	vbfs_whyf(why, "parity %s: parity.idx is malformed", dir);
	return VBFS_ERR_FORMAT;
}

/* The digest the index recorded for parity.idx (under its root digest). */
static vbfs_err recorded_digest(vbfs_index *idx, uint8_t out[VBFS_DIGEST_LEN])
{
	vbfs_txn *t;
	MDB_val k = { strlen(IDX_META_PARITY), (void *)IDX_META_PARITY }, v;
	vbfs_err err = vbfs_txn_begin(idx, &t);
	if (err)
		return err;
	int rc = mdb_get(t->txn, idx->db.meta, &k, &v);
	if (rc == 0 && v.mv_size == VBFS_DIGEST_LEN)
		memcpy(out, v.mv_data, VBFS_DIGEST_LEN);
	vbfs_txn_end(t);
	return rc == 0 && v.mv_size == VBFS_DIGEST_LEN ? VBFS_OK : VBFS_ERR_NOTFOUND;
}

vbfs_err vbfs_parity_open(vbfs_index *idx, const char *dir, struct vbfs_parity **out,
			  char why[VBFS_WHY_LEN])
{
	struct vbfs_parity *p = calloc(1, sizeof *p);
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN], *buf = NULL;
	char path[PATH_MAX];
	struct stat st;
	vbfs_err err = VBFS_ERR_IO;
	int fd = -1;
	*out = NULL;
	if (!p)
		return VBFS_ERR_NOMEM;
	p->idx = idx;
	p->dat_fd = p->store_fd = -1;
	if (recorded_digest(idx, want)) {
		vbfs_whyf(why, "parity %s: the index records no parity (build it with "
			  "'vbfsctl build --parity K+M --parity-dir DIR')", dir);
		err = VBFS_ERR_NOTFOUND;
		goto fail;
	}
	snprintf(path, sizeof path, "%s/parity.idx", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		vbfs_whyf(why, "parity %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!(buf = malloc((size_t)st.st_size + 1)) ||
	    vbfs_block_read(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		vbfs_whyf(why, "parity %s: cannot read", path);
		goto fail;
	}
	vbfs_sha256(buf, (size_t)st.st_size, got);
	if (memcmp(want, got, VBFS_DIGEST_LEN)) {
		vbfs_whyf(why, "parity %s: does not match the index (damaged, forged, or from "
			  "another build): not used", dir);
		err = VBFS_ERR_ROOT;
		goto fail;
	}
	if ((err = parse_idx(p, buf, (size_t)st.st_size, dir, why)))
		goto fail;
	snprintf(path, sizeof path, "%s/parity.dat", dir);
	if ((p->dat_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		/* Every fragment is an erasure then; the data may still do. */
		p->dat_fd = -1;
	}
	free(buf);
	close(fd);
	*out = p;
	return VBFS_OK;
fail:
	free(buf);
	if (fd >= 0)
		close(fd);
	vbfs_parity_close(p);
	return err;
}

void vbfs_parity_close(struct vbfs_parity *p)
{
	if (!p)
		return;
	if (p->dat_fd >= 0)
		close(p->dat_fd);
	if (p->store_fd >= 0)
		close(p->store_fd);
	parity_codec_free(&p->codec);
	layout_free(&p->l);
	free(p->digests);
	free(p);
}

vbfs_err vbfs_parity_set_store(struct vbfs_parity *p, const char *store, char why[VBFS_WHY_LEN])
{
	if ((p->store_fd = vbfs_store_open_root(store)) < 0) {
		vbfs_whyf(why, "store %s: %s", store, strerror(errno));
		return VBFS_ERR_IO;
	}
	return VBFS_OK;
}

/* One data member from the store.  With `verify`, judged by the block
 * verdict (false unless it matches its digest); without, only read (false
 * when it cannot be read whole): the fast path, where the rebuilt block's
 * own digest is the judge. */
static bool store_member(struct vbfs_parity *p, uint64_t f, uint64_t block, uint32_t len,
			 unsigned char *buf, bool verify)
{
	struct vbfs_entry e;
	struct vbfs_event ev;
	struct vbfs_block_check chk;
	uint8_t expected[VBFS_DIGEST_LEN];
	char *path = NULL;
	vbfs_txn *t;
	int fd = -1;
	bool ok = false;
	if (vbfs_txn_begin(p->idx, &t))
		return false;
	if (!vbfs_txn_get(t, p->l.files[f].id, &e) && e.size == p->l.files[f].size &&
	    !vbfs_txn_digest(t, e.id, block, expected) && (path = strndup(e.path, e.path_len))) {
		e.path = path;
		e.target = NULL;
		e.target_len = 0;
	}
	vbfs_txn_end(t);
	if (!path)
		return false;
	if (vbfs_file_open(p->store_fd, &e, &fd, &ev) <= VBFS_FILE_GROWN && fd >= 0)
		ok = verify ? vbfs_block_verify(fd, block * p->l.bs, len, expected, buf, &chk)
			      <= VBFS_BLOCK_TRANSIENT
			    : vbfs_block_read(fd, buf, len, block * p->l.bs) == (ssize_t)len;
	if (fd >= 0)
		close(fd);
	free(path);
	if (ok && len < p->l.bs)
		memset(buf + len, 0, p->l.bs - len);
	return ok;
}

/* Where a block sits in the parity: its stripe and the stripe's place. */
struct stripe_ref {
	struct parity_place pl;
	bool shorts;
	uint64_t stripe_no, dat_off;
	uint32_t len;                   /* the stripe's fragment length */
};

/* Read the stripe's fragments into frags[]; good[i] false for the target,
 * and for what cannot be read (or, with `verify`, does not match its
 * digest).  Returns the number of bad fragments. */
static unsigned gather(struct vbfs_parity *p, const struct stripe_ref *r, unsigned char **frags,
		       bool *good, bool verify)
{
	struct layout *l = &p->l;
	unsigned nbad = 0;
	for (uint32_t i = 0; i < l->k + l->m; i++) {
		if (i >= l->k) {   /* a parity fragment: its digest from parity.idx */
			uint8_t d[VBFS_DIGEST_LEN];
			uint64_t off = r->dat_off + (uint64_t)(i - l->k) * r->len;
			good[i] = p->dat_fd >= 0 &&
				  vbfs_block_read(p->dat_fd, frags[i], r->len, off) == (ssize_t)r->len;
			if (good[i] && verify) {
				vbfs_sha256(frags[i], r->len, d);
				good[i] = !memcmp(d, p->digests + (r->stripe_no * l->m + i - l->k) * VBFS_DIGEST_LEN,
						  VBFS_DIGEST_LEN);
			}
		} else if (i >= r->pl.members) {
			memset(frags[i], 0, r->len);   /* absent members are zeros */
			good[i] = true;
		} else if (i == r->pl.index) {
			good[i] = false;               /* the one we rebuild */
		} else {
			uint64_t mpos = r->pl.group_start + r->pl.stripe + (uint64_t)i * r->pl.nstripes, mb;
			uint32_t mlen;
			uint64_t mf = member_at(l, r->shorts, mpos, &mb, &mlen);
			good[i] = store_member(p, mf, mb, mlen, frags[i], verify);
		}
		nbad += !good[i];
	}
	return nbad;
}

bool vbfs_parity_heal(struct vbfs_parity *p, const struct vbfs_entry *e, uint64_t block,
		      const uint8_t expected[VBFS_DIGEST_LEN], void *buf,
		      vbfs_event_fn refused, void *ctx)
{
	struct layout *l = &p->l;
	struct vbfs_block_check chk = { .verdict = VBFS_BLOCK_UNREADABLE, .err = EIO };
	unsigned char *frags[PARITY_MAX_FRAGS] = { 0 }, *mem = NULL;
	bool good[PARITY_MAX_FRAGS];
	const char *detail = "the parity does not cover this file as indexed";
	uint32_t len = vbfs_block_len(e->size, l->bs, block);
	uint64_t total;
	int64_t f = file_index(l, vbfs_entry_data_id(e));
	bool shorts = len < l->bs, healed = false;

	if (f < 0 || l->files[f].size != e->size || p->store_fd < 0)
		goto out;
	/* Where the block sits: its sequence, stripe and fragment. */
	uint64_t pos = 0;
	if (shorts) {
		total = l->nshort;
		while (pos < total && l->short_order[pos] != (uint64_t)f)
			pos++;   /* linear, but only the rare short block heals this way */
		if (pos == total)
			goto out;
	} else {
		total = l->nfull;
		pos = l->full_prefix[f] + block;
	}
	struct stripe_ref r = { .shorts = shorts };
	parity_place(pos, total, l->k, l->s, &r.pl);
	uint64_t group_stripe = r.pl.group_start / ((uint64_t)l->k * l->s) * l->s + r.pl.stripe;
	if (shorts) {
		r.stripe_no = l->nstripes_full + group_stripe;
		r.dat_off = l->short_offset[group_stripe];
		r.len = short_len(l, l->short_order[r.pl.group_start + r.pl.stripe]);
	} else {
		r.stripe_no = group_stripe;
		r.dat_off = r.stripe_no * l->m * l->bs;
		r.len = l->bs;
	}
	detail = "out of memory";
	if (!(mem = vbfs_block_buf((size_t)(l->k + l->m + 1) * l->bs)))
		goto out;
	for (uint32_t i = 0; i < l->k + l->m; i++)
		frags[i] = mem + (size_t)i * l->bs;
	unsigned char *outbuf = mem + (size_t)(l->k + l->m) * l->bs;
	/* Fast path: read the stripe without hashing each member and let the
	 * rebuilt block's digest judge.  Only when that fails, find the bad
	 * fragments by their digests and decode around them. */
	for (int verify = 0; verify < 2 && !healed; verify++) {
		unsigned nbad = gather(p, &r, frags, good, verify);
		chk = (struct vbfs_block_check){ .verdict = VBFS_BLOCK_UNREADABLE, .err = EIO };
		detail = "more damaged fragments in its stripe than parity can rebuild";
		if (nbad > l->m)
			continue;
		detail = "the parity cannot be decoded";
		if (parity_decode(&p->codec, (int)r.len, frags, good, (int)r.pl.index, outbuf))
			continue;
		detail = "rebuilt from parity, but does not match the index digest";
		healed = vbfs_block_verify_bytes(outbuf, len, expected, &chk) == VBFS_BLOCK_OK;
	}
	if (healed)
		memcpy(buf, outbuf, len);
out:
	if (!healed && refused) {
		struct vbfs_event ev;
		vbfs_event_from_check(&ev, e, block, l->bs, expected, &chk);
		ev.source = VBFS_PARITY_SOURCE;
		ev.detail = detail;
		refused(ctx, &ev);
	}
	free(mem);
	return healed;
}
