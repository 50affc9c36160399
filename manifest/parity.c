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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <isa-l/erasure_code.h>
#include "index_internal.h"
#include "parity.h"
#include "pool.h"



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

/* The decode table that rebuilds data fragment `target` from the first k
 * good fragments, whose indexes go to rows[0..k).  0, or -1 when fewer
 * than k are good (or out of memory). */
static int decode_table(const struct parity_codec *c, const bool *good, int target,
			int rows[PARITY_MAX_FRAGS], unsigned char tables[32 * PARITY_MAX_FRAGS])
{
	int k = c->k, n = 0;
	unsigned char *b, *inv;
	for (int r = 0; r < k + c->m && n < k; r++)
		if (good[r])
			rows[n++] = r;
	if (n < k)
		return -1;
	/* The k good rows of the encode matrix, inverted: row `target` of
	 * the inverse rebuilds data fragment `target` from those k. */
	b = malloc((size_t)k * (size_t)k);
	inv = malloc((size_t)k * (size_t)k);
	int rc = -1;
	if (b && inv) {
		for (int i = 0; i < k; i++)
			memcpy(&b[i * k], &c->matrix[rows[i] * k], (size_t)k);
		if ((rc = gf_invert_matrix(b, inv, k)) == 0)
			ec_init_tables(k, 1, &inv[target * k], tables);
	}
	free(b);
	free(inv);
	return rc < 0 ? -1 : 0;
}

int parity_decode(const struct parity_codec *c, int len, unsigned char **frags,
		  const bool *good, int target, unsigned char *out)
{
	int rows[PARITY_MAX_FRAGS];
	unsigned char tables[32 * PARITY_MAX_FRAGS], *srcs[PARITY_MAX_FRAGS];
	if (decode_table(c, good, target, rows, tables))
		return -1;
	for (int i = 0; i < c->k; i++)
		srcs[i] = frags[rows[i]];
	ec_encode_data(len, c->k, 1, tables, srcs, &out);
	return 0;
}

/* ---- the layout -------------------------------------------------------------- */

void parity_place(uint64_t q, uint64_t n, uint32_t k, struct parity_place *out)
{
	uint32_t stripes = (uint32_t)((n + k - 1) / k);
	out->group_start = 0;
	out->nstripes = stripes;
	out->stripe = (uint32_t)(q % stripes);
	out->index = (uint32_t)(q / stripes);
	/* members of stripe j: positions j, j+s, ... below n */
	out->members = (uint32_t)((n - out->stripe + stripes - 1) / stripes);
}

uint32_t parity_depth(uint32_t m, uint32_t block_size)
{
	uint64_t s = PARITY_GROUP_BYTES / (2 * (uint64_t)m * block_size);
	return s < 1 ? 1 : s > PARITY_S_MAX ? PARITY_S_MAX : (uint32_t)s;
}

static uint64_t mix64(uint64_t x)   /* splitmix64's finaliser */
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ x >> 31;
}

uint64_t parity_path_hash(const char *path, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)path[i]) * 0x100000001b3ull;
	return mix64(h);
}

uint64_t parity_member_key(uint64_t path_hash, uint64_t block)
{
	return mix64(path_hash ^ mix64(block + 0x9e3779b97f4a7c15ull));
}

/*
 * PARITY_CUT: a group ends after member n-1 when K*S <= n and that
 * member's key is 0 modulo K*S/4 (and at least K*S members are left for
 * the next group), or at 2*K*S members; the rest of a sequence shorter
 * than that is one group.  The ends are where the keys say, not where a
 * count from the sequence's start says: inserting or removing members
 * moves only the ends near them, and the cut falls back in step at the
 * first natural end after the change (forced ends at 2*K*S, about 2% of
 * groups, can carry a shift one group further).
 */
uint64_t parity_cut(const uint64_t *key, uint64_t avail, uint32_t k, uint32_t s)
{
	uint64_t min = (uint64_t)k * s, max = 2 * min, d = min / 4 ? min / 4 : 1;
	if (avail <= min)
		return avail;
	for (uint64_t n = min; n < max; n++) {
		if (n == avail)
			return avail;
		if (key[n - 1] % d == 0 && avail - n >= min)
			return n;
	}
	return max < avail ? max : avail;
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

uint32_t parity_short_len(const struct parity_layout *l, uint64_t f)
{
	return (uint32_t)(l->files[f].size % l->bs);
}

static const struct parity_layout *sort_ctx;   /* qsort has no context argument */
static int by_short_len(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	uint32_t lx = parity_short_len(sort_ctx, x), ly = parity_short_len(sort_ctx, y);
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return (x > y) - (x < y);
}

static int by_id(const void *a, const void *b)
{
	uint64_t x = sort_ctx->files[*(const uint64_t *)a].id;
	uint64_t y = sort_ctx->files[*(const uint64_t *)b].id;
	return (x > y) - (x < y);
}

void parity_layout_free(struct parity_layout *l)
{
	free(l->files);
	free(l->by_id);
	free(l->full_prefix);
	free(l->short_order);
	free(l->groups);
	memset(l, 0, sizeof *l);
}

/* The sequences from the files: prefix sums, the short order, the id order. */
static vbfs_err layout_sequences(struct parity_layout *l)
{
	static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
	free(l->full_prefix);
	free(l->short_order);
	free(l->by_id);
	l->full_prefix = malloc((l->nfiles + 1) * sizeof *l->full_prefix);
	l->short_order = malloc((l->nfiles + 1) * sizeof *l->short_order);
	l->by_id = malloc((l->nfiles + 1) * sizeof *l->by_id);
	if (!l->full_prefix || !l->short_order || !l->by_id)
		return VBFS_ERR_NOMEM;
	l->nfull = l->nshort = 0;
	for (uint64_t f = 0; f < l->nfiles; f++) {
		l->full_prefix[f] = l->nfull;
		l->nfull += l->files[f].size / l->bs;
		l->by_id[f] = f;
		if (parity_short_len(l, f))
			l->short_order[l->nshort++] = f;
	}
	l->full_prefix[l->nfiles] = l->nfull;
	pthread_mutex_lock(&sort_lock);
	sort_ctx = l;
	qsort(l->short_order, l->nshort, sizeof *l->short_order, by_short_len);
	qsort(l->by_id, l->nfiles, sizeof *l->by_id, by_id);
	pthread_mutex_unlock(&sort_lock);
	for (uint64_t i = 1; i < l->nfiles; i++)
		if (l->files[l->by_id[i]].id == l->files[l->by_id[i - 1]].id)
			return VBFS_ERR_FORMAT;   /* a file covered twice */
	return VBFS_OK;
}

vbfs_err parity_layout_derive(struct parity_layout *l)
{
	vbfs_err err = layout_sequences(l);
	if (err)
		return err;
	uint64_t stripe = 0, off = 0, covered[2] = { 0, 0 };
	for (uint64_t g = 0; g < l->ngroups_full + l->ngroups_short; g++) {
		struct parity_group *gr = &l->groups[g];
		bool shorts = g >= l->ngroups_full;
		uint64_t total = shorts ? l->nshort : l->nfull, at = covered[shorts];
		if (!gr->n || gr->n > total - at || gr->n > 2 * (uint64_t)l->k * l->s)
			return VBFS_ERR_FORMAT;
		gr->start = at;
		gr->first_stripe = stripe;
		gr->dat_off = off;
		uint32_t s = (uint32_t)((gr->n + l->k - 1) / l->k);
		for (uint32_t j = 0; j < s; j++)
			off += (uint64_t)l->m * parity_stripe_len(l, gr, shorts, j);
		stripe += s;
		covered[shorts] += gr->n;
	}
	if (covered[0] != l->nfull || covered[1] != l->nshort)
		return VBFS_ERR_FORMAT;   /* every member in exactly one group */
	l->nstripes = stripe;
	l->dat_size = off;
	return VBFS_OK;
}

uint32_t parity_stripe_len(const struct parity_layout *l, const struct parity_group *g,
			   bool shorts, uint32_t j)
{
	/* stripe j's longest member is its first: position start + j */
	return shorts ? parity_short_len(l, l->short_order[g->start + j]) : l->bs;
}

uint64_t parity_stripe_off(const struct parity_layout *l, const struct parity_group *g,
			   bool shorts, uint32_t j)
{
	if (!shorts)
		return g->dat_off + (uint64_t)j * l->m * l->bs;
	uint64_t off = g->dat_off;
	for (uint32_t i = 0; i < j; i++)   /* at most 2*S stripes */
		off += (uint64_t)l->m * parity_stripe_len(l, g, true, i);
	return off;
}

const struct parity_group *parity_group_of(const struct parity_layout *l, bool shorts,
					    uint64_t pos)
{
	uint64_t lo = shorts ? l->ngroups_full : 0;
	uint64_t hi = shorts ? l->ngroups_full + l->ngroups_short : l->ngroups_full;
	if (lo == hi)
		return NULL;
	while (hi - lo > 1) {   /* last group with start <= pos */
		uint64_t mid = lo + (hi - lo) / 2;
		if (l->groups[mid].start <= pos)
			lo = mid;
		else
			hi = mid;
	}
	const struct parity_group *g = &l->groups[lo];
	return pos >= g->start && pos - g->start < g->n ? g : NULL;
}

/* Member `pos` of the full sequence: its file and block. */
static uint64_t full_member(const struct parity_layout *l, uint64_t pos, uint64_t *block)
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

uint64_t parity_member_at(const struct parity_layout *l, bool shorts, uint64_t pos,
			  uint64_t *block, uint32_t *len)
{
	uint64_t f;
	if (!shorts) {
		*len = l->bs;
		return full_member(l, pos, block);
	}
	f = l->short_order[pos];
	*block = l->files[f].size / l->bs;
	*len = parity_short_len(l, f);
	return f;
}

int64_t parity_file_index(const struct parity_layout *l, uint64_t id)
{
	uint64_t lo = 0, hi = l->nfiles;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (l->files[l->by_id[mid]].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->nfiles && l->files[l->by_id[lo]].id == id ? (int64_t)l->by_id[lo] : -1;
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

/* magic, k m s bs, nfiles, dat_size, groups of the full and short sequence */
#define HDR_LEN (8 + 4 * 4 + 8 + 8 + 8 + 8)
#define GROUP_LEN (8 + VBFS_DIGEST_LEN)

vbfs_err parity_idx_encode(const struct parity_layout *l, const uint8_t *digests,
			   uint8_t **out, size_t *len)
{
	uint64_t ngroups = l->ngroups_full + l->ngroups_short;
	size_t n = HDR_LEN + l->nfiles * 16 + ngroups * GROUP_LEN +
		   l->nstripes * l->m * VBFS_DIGEST_LEN;
	uint8_t *buf = malloc(n), *p = buf;
	if (!buf)
		return VBFS_ERR_NOMEM;
	memcpy(p, PARITY_MAGIC, 8);
	put_le(p + 8, l->k, 4);
	put_le(p + 12, l->m, 4);
	put_le(p + 16, l->s, 4);
	put_le(p + 20, l->bs, 4);
	put_le(p + 24, l->nfiles, 8);
	put_le(p + 32, l->dat_size, 8);
	put_le(p + 40, l->ngroups_full, 8);
	put_le(p + 48, l->ngroups_short, 8);
	p += HDR_LEN;
	for (uint64_t f = 0; f < l->nfiles; f++, p += 16) {
		put_le(p, l->files[f].id, 8);
		put_le(p + 8, l->files[f].size, 8);
	}
	for (uint64_t g = 0; g < ngroups; g++, p += GROUP_LEN) {
		put_le(p, l->groups[g].n, 8);
		memcpy(p + 8, l->groups[g].key, VBFS_DIGEST_LEN);
	}
	memcpy(p, digests, l->nstripes * l->m * VBFS_DIGEST_LEN);
	*out = buf;
	*len = n;
	return VBFS_OK;
}

vbfs_err parity_idx_parse(const uint8_t *buf, size_t n, uint32_t block_size,
			  struct parity_layout *l, uint8_t **digests)
{
	const uint8_t *q = buf + HDR_LEN;
	vbfs_err err;
	memset(l, 0, sizeof *l);
	*digests = NULL;
	if (n < HDR_LEN || memcmp(buf, PARITY_MAGIC, 8))
		return VBFS_ERR_FORMAT;
	l->k = (uint32_t)get_le(buf + 8, 4);
	l->m = (uint32_t)get_le(buf + 12, 4);
	l->s = (uint32_t)get_le(buf + 16, 4);
	l->bs = (uint32_t)get_le(buf + 20, 4);
	l->nfiles = get_le(buf + 24, 8);
	l->ngroups_full = get_le(buf + 40, 8);
	l->ngroups_short = get_le(buf + 48, 8);
	uint64_t room = n - HDR_LEN;
	if (l->k < 1 || l->m < 1 || l->k > 127 || l->k + l->m > PARITY_MAX_FRAGS ||
	    l->s < 1 || l->s > PARITY_S_MAX || l->bs != block_size ||
	    l->nfiles > room / 16 || l->ngroups_full > room / GROUP_LEN ||
	    l->ngroups_short > room / GROUP_LEN ||
	    l->nfiles * 16 + (l->ngroups_full + l->ngroups_short) * GROUP_LEN > room)
		return VBFS_ERR_FORMAT;
	if (!(l->files = calloc(l->nfiles + 1, sizeof *l->files)) ||
	    !(l->groups = calloc(l->ngroups_full + l->ngroups_short + 1, sizeof *l->groups)))
		return VBFS_ERR_NOMEM;
	for (uint64_t f = 0; f < l->nfiles; f++, q += 16) {
		l->files[f].id = get_le(q, 8);
		l->files[f].size = get_le(q + 8, 8);
	}
	for (uint64_t g = 0; g < l->ngroups_full + l->ngroups_short; g++, q += GROUP_LEN) {
		l->groups[g].n = get_le(q, 8);
		memcpy(l->groups[g].key, q + 8, VBFS_DIGEST_LEN);
	}
	if ((err = parity_layout_derive(l)))
		return err;
	if ((size_t)(buf + n - q) != l->nstripes * l->m * VBFS_DIGEST_LEN ||
	    get_le(buf + 32, 8) != l->dat_size)
		return VBFS_ERR_FORMAT;
	if (!(*digests = malloc(l->nstripes * l->m * VBFS_DIGEST_LEN + 1)))
		return VBFS_ERR_NOMEM;
	memcpy(*digests, q, l->nstripes * l->m * VBFS_DIGEST_LEN);
	return VBFS_OK;
}

/* The digest the index recorded for parity.idx (under its root digest). */
static vbfs_err recorded_digest(vbfs_index *idx, uint8_t out[VBFS_DIGEST_LEN])
{
	vbfs_txn *t;
	MDB_val k = { strlen(PARITY_META_KEY), (void *)PARITY_META_KEY }, v;
	vbfs_err err = vbfs_txn_begin(idx, &t);
	if (err)
		return err;
	int rc = mdb_get(t->txn, idx->db.meta, &k, &v);
	if (rc == 0 && v.mv_size == VBFS_DIGEST_LEN)
		memcpy(out, v.mv_data, VBFS_DIGEST_LEN);
	vbfs_txn_end(t);
	return rc == 0 && v.mv_size == VBFS_DIGEST_LEN ? VBFS_OK : VBFS_ERR_NOTFOUND;
}

int parity_open_reg(const char *path)
{
	struct stat st = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = st.st_mode && !S_ISREG(st.st_mode) ? EINVAL : errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

vbfs_err parity_idx_load(vbfs_index *idx, const char *dir, struct parity_layout *l,
			 uint8_t **digests, char why[VBFS_WHY_LEN])
{
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN], *buf = NULL;
	char path[PATH_MAX];
	struct stat st;
	vbfs_err err = VBFS_ERR_IO;
	int fd = -1;
	memset(l, 0, sizeof *l);
	*digests = NULL;
	if (recorded_digest(idx, want)) {
		vbfs_whyf(why, "parity %s: the index records no parity (build it with "
			  "'vbfsctl build --parity K+M --parity-dir DIR')", dir);
		return VBFS_ERR_NOTFOUND;
	}
	snprintf(path, sizeof path, "%s/parity.idx", dir);
	if ((fd = parity_open_reg(path)) < 0 || fstat(fd, &st) < 0) {
		vbfs_whyf(why, "parity %s: %s", path,
			  errno == EINVAL ? "not a regular file (not opened)" : strerror(errno));
		goto out;
	}
	if (!(buf = malloc((size_t)st.st_size + 1)) ||
	    vbfs_block_read(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		vbfs_whyf(why, "parity %s: cannot read", path);
		goto out;
	}
	vbfs_sha256(buf, (size_t)st.st_size, got);
	if (memcmp(want, got, VBFS_DIGEST_LEN)) {
		vbfs_whyf(why, "parity %s: does not match the index (damaged, forged, or from "
			  "another build): not used", dir);
		err = VBFS_ERR_ROOT;
		goto out;
	}
	err = parity_idx_parse(buf, (size_t)st.st_size, vbfs_index_meta(idx)->block_size, l,
			       digests);
	if (err == VBFS_ERR_FORMAT)
		vbfs_whyf(why, "parity %s: parity.idx is malformed (or from an older vbfs: "
			  "build the parity again)", dir);
out:
	if (err) {
		parity_layout_free(l);
		free(*digests);
		*digests = NULL;
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	return err;
}

/* ---- the source ------------------------------------------------------------------ */

/* A rebuild's buffers, kept for the next one: a mount heals block after
 * block, and faulting in fresh pages cost as much as the decode did. */
#define SPARE_MAX 2                     /* the fast path's two threads */
#define PARITY_CHUNK (64u << 10)        /* the fast path's unit (see rebuild_fast) */
struct spare {
	pthread_mutex_t lock;
	void *buf[SPARE_MAX];           /* protected by lock; NULL: none kept */
	size_t size[SPARE_MAX];
};

struct vbfs_parity {
	vbfs_index *idx;
	struct parity_layout l;
	struct parity_codec codec;
	uint8_t *digests;
	int dat_fd, store_fd;
	struct spare chunks;            /* the fast path's k chunks, per thread */
	struct spare stripe;            /* the slow path's k+m fragments */
};

vbfs_err vbfs_parity_open(vbfs_index *idx, const char *dir, struct vbfs_parity **out,
			  char why[VBFS_WHY_LEN])
{
	struct vbfs_parity *p = calloc(1, sizeof *p);
	char path[PATH_MAX];
	vbfs_err err;
	*out = NULL;
	if (!p)
		return VBFS_ERR_NOMEM;
	p->idx = idx;
	p->dat_fd = p->store_fd = -1;
	pthread_mutex_init(&p->chunks.lock, NULL);
	pthread_mutex_init(&p->stripe.lock, NULL);
	if ((err = parity_idx_load(idx, dir, &p->l, &p->digests, why)))
		goto fail;
	if (parity_codec_init(&p->codec, (int)p->l.k, (int)p->l.m)) {
		err = VBFS_ERR_NOMEM;
		goto fail;
	}
	snprintf(path, sizeof path, "%s/parity.dat", dir);
	if ((p->dat_fd = parity_open_reg(path)) < 0) {
		/* Every fragment is an erasure then; the data may still do. */
		p->dat_fd = -1;
	}
	*out = p;
	return VBFS_OK;
fail:
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
	parity_layout_free(&p->l);
	free(p->digests);
	for (int i = 0; i < SPARE_MAX; i++) {
		free(p->chunks.buf[i]);
		free(p->stripe.buf[i]);
	}
	pthread_mutex_destroy(&p->chunks.lock);
	pthread_mutex_destroy(&p->stripe.lock);
	free(p);
}

static void spare_give(struct spare *sp, void *b, size_t size);

vbfs_err vbfs_parity_set_store(struct vbfs_parity *p, const char *store, char why[VBFS_WHY_LEN])
{
	if ((p->store_fd = vbfs_store_open_root(store)) < 0) {
		vbfs_whyf(why, "store %s: %s", store, strerror(errno));
		return VBFS_ERR_IO;
	}
	/* The fast path's chunk buffers (k x 64 KiB per thread), faulted in
	 * now: the first damaged block should not pay for its pages. */
	size_t size = (size_t)p->l.k * PARITY_CHUNK;
	for (unsigned i = 0; i < SPARE_MAX && i < vbfs_ncpu(); i++) {
		void *b = vbfs_block_buf(size);
		if (!b)
			break;   /* a rebuild allocates its own then */
		memset(b, 0, size);
		spare_give(&p->chunks, b, size);
	}
	return VBFS_OK;
}

/* ---- rebuilding one block ------------------------------------------------------ */

/*
 * The fast path reads and decodes the stripe in chunks of PARITY_CHUNK
 * bytes: k chunks (about 2 MiB at 32+2) stay in the CPU cache between the
 * copy out of the page cache and the decode, where whole fragments (33 MiB)
 * went through memory three times.  Only the k fragments the decode needs
 * are read, and only the bytes of the rebuilt block's length.
 */

static void *spare_take(struct spare *sp, size_t size)
{
	void *b = NULL;
	pthread_mutex_lock(&sp->lock);
	for (int i = 0; i < SPARE_MAX && !b; i++)
		if (sp->buf[i] && sp->size[i] == size) {
			b = sp->buf[i];
			sp->buf[i] = NULL;
		}
	pthread_mutex_unlock(&sp->lock);
	return b ? b : vbfs_block_buf(size);
}

static void spare_give(struct spare *sp, void *b, size_t size)
{
	pthread_mutex_lock(&sp->lock);
	for (int i = 0; i < SPARE_MAX && b; i++)
		if (!sp->buf[i]) {
			sp->buf[i] = b;
			sp->size[i] = size;
			b = NULL;
		}
	pthread_mutex_unlock(&sp->lock);
	free(b);   /* enough are kept already */
}

/* Where a block sits in the parity: its stripe and the stripe's place. */
struct stripe_ref {
	struct parity_place pl;
	bool shorts;
	uint64_t stripe_no, dat_off;
	uint32_t len;                   /* the stripe's fragment length */
};

/* A file of the store holding members of the stripe, opened once. */
struct member_file {
	uint64_t f;                     /* index in the layout */
	struct vbfs_entry e;            /* e.path malloc'd */
	bool known;                     /* the index has it at the size covered */
	int fd;                         /* -1: cannot be opened as indexed */
};

/* One data fragment of the stripe that is a member (not the target). */
struct member {
	uint64_t block;
	uint32_t len;
	struct member_file *file;
	uint8_t expected[VBFS_DIGEST_LEN];
	bool have_digest;
};

/* One rebuild: the stripe, its members, the files they are in. */
struct rebuild {
	struct vbfs_parity *p;
	struct stripe_ref r;
	struct member mem[PARITY_MAX_FRAGS];        /* data fragment i < r.pl.members */
	struct member_file files[PARITY_MAX_FRAGS];
	unsigned nfiles;
	/* the slow path's */
	unsigned char *frags[PARITY_MAX_FRAGS];
	bool good[PARITY_MAX_FRAGS];
};

static struct member_file *member_file_of(struct rebuild *rb, uint64_t f)
{
	for (unsigned i = 0; i < rb->nfiles; i++)
		if (rb->files[i].f == f)
			return &rb->files[i];
	struct member_file *mf = &rb->files[rb->nfiles++];
	mf->f = f;
	mf->known = false;
	mf->fd = -1;
	return mf;
}

/* The members' files and digests, in one turn at the index; then the
 * files are opened (after the turn: never hold it across I/O). */
static void rebuild_members(struct rebuild *rb)
{
	struct vbfs_parity *p = rb->p;
	const struct parity_layout *l = &p->l;
	vbfs_txn *t = NULL;
	bool have_txn = !vbfs_txn_begin(p->idx, &t);
	for (uint32_t i = 0; i < rb->r.pl.members; i++) {
		struct member *m = &rb->mem[i];
		uint64_t mpos = rb->r.pl.group_start + rb->r.pl.stripe + (uint64_t)i * rb->r.pl.nstripes;
		uint64_t f = parity_member_at(l, rb->r.shorts, mpos, &m->block, &m->len);
		if (i == rb->r.pl.index)
			continue;
		m->file = member_file_of(rb, f);
		m->have_digest = false;
		if (!have_txn)
			continue;
		if (m->file->fd == -1 && !m->file->known) {   /* first sight of the file */
			struct vbfs_entry e;
			char *path;
			if (!vbfs_txn_get(t, l->files[f].id, &e) && e.size == l->files[f].size &&
			    (path = strndup(e.path, e.path_len))) {
				m->file->e = e;
				m->file->e.path = path;
				m->file->e.target = NULL;
				m->file->e.target_len = 0;
				m->file->known = true;
			}
		}
		m->have_digest = m->file->known &&
				 !vbfs_txn_digest(t, vbfs_entry_data_id(&m->file->e), m->block, m->expected);
	}
	if (have_txn)
		vbfs_txn_end(t);
	for (unsigned i = 0; i < rb->nfiles; i++) {
		struct member_file *mf = &rb->files[i];
		struct vbfs_event ev;
		int fd = -1;
		if (mf->known && vbfs_file_open(p->store_fd, &mf->e, &fd, &ev) <= VBFS_FILE_GROWN)
			mf->fd = fd;
		else if (fd >= 0)
			close(fd);
	}
}

static void rebuild_done(struct rebuild *rb)
{
	for (unsigned i = 0; i < rb->nfiles; i++) {
		if (rb->files[i].fd >= 0)
			close(rb->files[i].fd);
		if (rb->files[i].known)
			free((char *)rb->files[i].e.path);
	}
}

/* Can data fragment i be read at all?  (The target is not: it is rebuilt;
 * a fragment past the stripe's members is zeros.) */
static bool member_readable(const struct rebuild *rb, uint32_t i)
{
	if (i == rb->r.pl.index)
		return false;
	return i >= rb->r.pl.members || rb->mem[i].file->fd >= 0;
}

/* Bytes [off, off+n) of fragment `row` into dst; false when they cannot be
 * read whole. */
static bool read_frag(const struct rebuild *rb, uint32_t row, uint64_t off, uint32_t n,
		      unsigned char *dst)
{
	const struct vbfs_parity *p = rb->p;
	uint32_t k = p->l.k, have = 0;
	if (row >= k)
		return vbfs_block_read(p->dat_fd, dst, n,
				       rb->r.dat_off + (uint64_t)(row - k) * rb->r.len + off) == (ssize_t)n;
	if (row < rb->r.pl.members) {
		const struct member *m = &rb->mem[row];
		have = off >= m->len ? 0 : m->len - off < n ? (uint32_t)(m->len - off) : n;
		if (have && vbfs_block_read(m->file->fd, dst, have, m->block * p->l.bs + off)
			    != (ssize_t)have)
			return false;
	}
	memset(dst + have, 0, n - have);   /* past a member's end, and absent members: zeros */
	return true;
}

/* The fast path's decode, shared by its threads: each claims chunks. */
struct fast_job {
	struct rebuild *rb;
	const int *rows;
	unsigned char *tables;
	uint32_t len;
	unsigned char *out;
	atomic_uint next;               /* the next chunk to claim */
	atomic_bool failed;             /* a fragment could not be read (or no memory) */
};

static void fast_chunks(struct fast_job *j)
{
	struct vbfs_parity *p = j->rb->p;
	uint32_t k = p->l.k;
	size_t size = (size_t)k * PARITY_CHUNK;
	unsigned char *chunks = spare_take(&p->chunks, size), *srcs[PARITY_MAX_FRAGS];
	if (!chunks) {
		atomic_store(&j->failed, true);
		return;
	}
	for (uint32_t i = 0; i < k; i++)
		srcs[i] = chunks + (size_t)i * PARITY_CHUNK;
	for (;;) {
		uint64_t off = (uint64_t)atomic_fetch_add(&j->next, 1) * PARITY_CHUNK;
		if (off >= j->len || atomic_load(&j->failed))
			break;
		uint32_t n = j->len - off < PARITY_CHUNK ? (uint32_t)(j->len - off) : PARITY_CHUNK;
		bool ok = true;
		for (uint32_t i = 0; i < k && ok; i++)
			ok = read_frag(j->rb, (uint32_t)j->rows[i], off, n, srcs[i]);
		if (!ok) {
			atomic_store(&j->failed, true);
			break;
		}
		unsigned char *dst = j->out + off;
		ec_encode_data((int)n, (int)k, 1, j->tables, srcs, &dst);
	}
	spare_give(&p->chunks, chunks, size);
}

static void *fast_helper(void *arg)
{
	fast_chunks(arg);
	return NULL;
}

/*
 * Fast path: decode from the first k fragments that can be read, without
 * hashing them; the rebuilt block's own digest is the judge.  A second
 * thread takes every other chunk (a 1 MiB block is 16 chunks): on a busy
 * machine the heal gets two turns at the CPU instead of one.  False (and
 * `out` holds no verified bytes) when that cannot be done or does not
 * verify: then the slow path finds the bad fragments.
 */
static bool rebuild_fast(struct rebuild *rb, uint32_t len, const uint8_t expected[VBFS_DIGEST_LEN],
			 unsigned char *out, struct vbfs_block_check *chk, const char **detail)
{
	struct vbfs_parity *p = rb->p;
	uint32_t k = p->l.k, m = p->l.m;
	int rows[PARITY_MAX_FRAGS];
	unsigned char tables[32 * PARITY_MAX_FRAGS];
	bool good[PARITY_MAX_FRAGS];
	for (uint32_t i = 0; i < k + m; i++)
		good[i] = i < k ? member_readable(rb, i) : p->dat_fd >= 0;
	*detail = "more damaged fragments in its stripe than parity can rebuild";
	if (decode_table(&p->codec, good, (int)rb->r.pl.index, rows, tables))
		return false;
	struct fast_job j = { .rb = rb, .rows = rows, .tables = tables, .len = len, .out = out };
	atomic_init(&j.next, 0);
	atomic_init(&j.failed, false);
	pthread_t helper;
	bool helped = len > PARITY_CHUNK && vbfs_ncpu() > 1 &&
		      pthread_create(&helper, NULL, fast_helper, &j) == 0;
	fast_chunks(&j);
	if (helped)
		pthread_join(helper, NULL);
	*detail = "a fragment of its stripe could not be read";
	if (atomic_load(&j.failed))
		return false;
	*detail = "rebuilt from parity, but does not match the index digest";
	return vbfs_block_verify_bytes(out, len, expected, chk) == VBFS_BLOCK_OK;
}

/* The slow path's task: read fragment i of the stripe whole and judge it by
 * its digest (a data member by the block verdict, a parity fragment by
 * parity.idx).  Run on every core: at 32+2 that is 33 MiB to hash. */
static void judge_frag(void *ctx, size_t task, void *unused)
{
	struct rebuild *rb = ctx;
	const struct vbfs_parity *p = rb->p;
	uint32_t i = (uint32_t)task, k = p->l.k, len = rb->r.len;
	unsigned char *frag = rb->frags[i];
	(void)unused;
	if (i >= k) {
		uint8_t d[VBFS_DIGEST_LEN];
		rb->good[i] = p->dat_fd >= 0 && read_frag(rb, i, 0, len, frag);
		if (rb->good[i]) {
			vbfs_sha256(frag, len, d);
			rb->good[i] = !memcmp(d, p->digests + (rb->r.stripe_no * p->l.m + i - k) *
							 VBFS_DIGEST_LEN, VBFS_DIGEST_LEN);
		}
	} else if (!member_readable(rb, i)) {
		rb->good[i] = false;
	} else if (i >= rb->r.pl.members) {
		memset(frag, 0, len);   /* absent members are zeros */
		rb->good[i] = true;
	} else {
		const struct member *m = &rb->mem[i];
		struct vbfs_block_check chk;
		rb->good[i] = m->have_digest &&
			      vbfs_block_verify(m->file->fd, m->block * p->l.bs, m->len, m->expected,
						frag, &chk) <= VBFS_BLOCK_TRANSIENT;
		if (rb->good[i])
			memset(frag + m->len, 0, len - m->len);
	}
}

/* Slow path: every fragment hashed, the bad ones erasures. */
static bool rebuild_slow(struct rebuild *rb, uint32_t len, const uint8_t expected[VBFS_DIGEST_LEN],
			 unsigned char *out, struct vbfs_block_check *chk, const char **detail)
{
	struct vbfs_parity *p = rb->p;
	uint32_t k = p->l.k, m = p->l.m, nbad = 0;
	size_t size = (size_t)(k + m) * p->l.bs;
	unsigned char *mem = spare_take(&p->stripe, size);
	struct pool pool;
	*chk = (struct vbfs_block_check){ .verdict = VBFS_BLOCK_UNREADABLE, .err = EIO };
	*detail = "out of memory";
	if (!mem)
		return false;
	for (uint32_t i = 0; i < k + m; i++)
		rb->frags[i] = mem + (size_t)i * p->l.bs;
	if (pool_start(&pool, 0, k + m, 0, judge_frag, rb, NULL) == 0)
		pool_join(&pool);
	else
		for (uint32_t i = 0; i < k + m; i++)   /* no thread to be had: in this one */
			judge_frag(rb, i, NULL);
	for (uint32_t i = 0; i < k + m; i++)
		nbad += !rb->good[i];
	bool healed = false;
	*detail = "more damaged fragments in its stripe than parity can rebuild";
	if (nbad <= m && !parity_decode(&p->codec, (int)len, rb->frags, rb->good,
					(int)rb->r.pl.index, out)) {
		*detail = "rebuilt from parity, but does not match the index digest";
		healed = vbfs_block_verify_bytes(out, len, expected, chk) == VBFS_BLOCK_OK;
	}
	spare_give(&p->stripe, mem, size);
	return healed;
}

bool vbfs_parity_heal(struct vbfs_parity *p, const struct vbfs_entry *e, uint64_t block,
		      const uint8_t expected[VBFS_DIGEST_LEN], void *buf,
		      vbfs_event_fn refused, void *ctx)
{
	struct parity_layout *l = &p->l;
	struct vbfs_block_check chk = { .verdict = VBFS_BLOCK_UNREADABLE, .err = EIO };
	const char *detail = "the parity does not cover this file as indexed";
	uint32_t len = vbfs_block_len(e->size, l->bs, block);
	uint64_t total;
	int64_t f = parity_file_index(l, vbfs_entry_data_id(e));
	bool shorts = len < l->bs, healed = false;
	struct rebuild *rb = NULL;

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
	detail = "out of memory";
	if (!(rb = calloc(1, sizeof *rb)))
		goto out;
	rb->p = p;
	struct stripe_ref *r = &rb->r;
	r->shorts = shorts;
	const struct parity_group *g = parity_group_of(l, shorts, pos);
	detail = "the parity does not cover this file as indexed";
	if (!g)
		goto out;
	parity_place(pos - g->start, g->n, l->k, &r->pl);
	r->pl.group_start = g->start;
	r->stripe_no = g->first_stripe + r->pl.stripe;
	r->dat_off = parity_stripe_off(l, g, shorts, r->pl.stripe);
	r->len = parity_stripe_len(l, g, shorts, r->pl.stripe);
	rebuild_members(rb);
	/* Fast path: the stripe as read, judged by the rebuilt block's digest.
	 * Only when that fails, find the bad fragments by their digests and
	 * decode around them. */
	healed = rebuild_fast(rb, len, expected, buf, &chk, &detail) ||
		 rebuild_slow(rb, len, expected, buf, &chk, &detail);
	rebuild_done(rb);
out:
	if (!healed && refused) {
		struct vbfs_event ev;
		vbfs_event_from_check(&ev, e, block, l->bs, expected, &chk);
		ev.source = VBFS_PARITY_SOURCE;
		ev.detail = detail;
		refused(ctx, &ev);
	}
	free(rb);
	return healed;
}
