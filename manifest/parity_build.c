/*
 * parity_build.c - `vbfsctl build --parity K+M`: plan the groups (layout:
 * parity.h), encode inline while vbfs_build hashes, then, after the index
 * is committed, take unchanged groups from the old parity and encode the
 * rest; write parity.dat and parity.idx and record parity.idx's SHA-256 in
 * the index.
 *
 * A group's key is the SHA-256 of K, M, the block size and its members'
 * lengths and digests: two groups with one key encode the same bytes, so
 * their parity fragments are the same.  An incremental build looks each
 * group's key up in the old parity.idx (whose own SHA-256 the old index
 * records under its root digest) and copies that group's fragments,
 * each checked against its SHA-256 in the old parity.idx; a fragment that
 * does not match makes the group be encoded again.
 *
 * Why parity from the store's bytes can be trusted this far and no
 * further: a parity fragment never reaches a reader; a block rebuilt from
 * it is served only if it matches the index digest (vbfs_parity_heal).
 * So a wrong fragment costs a heal, never a wrong byte.  The build still
 * keeps the keys honest, so that reuse does not carry a wrong group
 * forward: inline, the bytes encoded are the very bytes hashed (a file
 * that changed while hashed is encoded again after the build); after the
 * build, each member read is checked against its digest, and a group with
 * a member that does not match is written with no key (never reused).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "index_internal.h"
#include "parity.h"
#include "pool.h"

/* One group's state while the build hashes: flags and acc's allocation
 * guarded by `lock`; the accumulators of stripe j by the plan's
 * slock[(first_stripe + j) % STRIPE_LOCKS], so that workers feeding
 * consecutive blocks (consecutive stripes) do not wait for each other. */
struct gstate {
	pthread_mutex_t lock;
	unsigned char *acc;             /* s*m accumulators of block size, or NULL */
	size_t acc_len;
	atomic_uint_fast64_t fed;       /* members fed so far */
	bool hashed;                    /* every member is hashed by this build */
	bool spoiled;                   /* a member's bytes fed are not the indexed ones */
	bool done;                      /* encoded and written: digests in `digests` */
};

struct pfile_extra {
	char *path;
	uint64_t path_hash;
	bool hashed;
	uint64_t short_pos;             /* its place in the short sequence, if any */
};

/* The old parity an incremental build takes groups from. */
struct old_parity {
	struct parity_layout l;
	uint8_t *digests;
	uint64_t *by_key;               /* group indexes sorted by key */
	int dat_fd;
};

#define STRIPE_LOCKS 256

struct vbfs_parity_plan {
	struct vbfs_parity_opts o;
	pthread_mutex_t slock[STRIPE_LOCKS];
	char *dir_copy, *index_copy;
	char dat_tmp[PATH_MAX], idx_tmp[PATH_MAX], dat[PATH_MAX], idx[PATH_MAX];
	struct parity_layout l;
	struct parity_codec codec;
	struct pfile_extra *x;          /* per file, as l.files */
	uint64_t cap;
	bool began, laid_out;
	struct gstate *gs;              /* per group */
	uint8_t *digests;               /* l.nstripes * m */
	uint8_t *mdig;                  /* member digests: full sequence, then short */
	int dat_fd;
	struct old_parity old;
	bool have_old;
	char reuse_note[VBFS_WHY_LEN];
	/* errors from the workers */
	pthread_mutex_t err_lock;
	vbfs_err err;
	char err_why[VBFS_WHY_LEN];
	volatile int abort;
	/* counters (after the build, on one thread or under err_lock) */
	uint64_t groups_reused, groups_encoded, fragments_refused, bytes_read;
};

static void plan_fail(vbfs_parity_plan *p, vbfs_err err, const char *why)
{
	pthread_mutex_lock(&p->err_lock);
	if (!p->err) {
		p->err = err;
		snprintf(p->err_why, sizeof p->err_why, "%s", why);
	}
	p->abort = 1;
	pthread_mutex_unlock(&p->err_lock);
}

static vbfs_err pwrite_all(int fd, const void *buf, size_t n, uint64_t off, const char *what,
			   char *why)
{
	if (vbfs_write_all(fd, buf, n, (off_t)off) == 0)
		return VBFS_OK;
	vbfs_whyf(why, "write %s: %s", what, strerror(errno));
	return VBFS_ERR_IO;
}

/* ---- the old parity -------------------------------------------------------------- */

static const struct old_parity *key_ctx;   /* qsort has no context argument */
static int by_key(const void *a, const void *b)
{
	return memcmp(key_ctx->l.groups[*(const uint64_t *)a].key,
		      key_ctx->l.groups[*(const uint64_t *)b].key, VBFS_DIGEST_LEN);
}

static void old_close(struct old_parity *o)
{
	parity_layout_free(&o->l);
	free(o->digests);
	free(o->by_key);
	if (o->dat_fd >= 0)
		close(o->dat_fd);
	memset(o, 0, sizeof *o);
	o->dat_fd = -1;
}

/* Open the old parity: the index that records it is opened (root digest
 * checked), parity.idx checked against its record, parity.dat kept open
 * (a rename of the new one over it later leaves this descriptor as it is). */
static void old_open(vbfs_parity_plan *p, const char *index_dir, const char *dir)
{
	static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
	char why[VBFS_WHY_LEN] = "", path[PATH_MAX];
	vbfs_index *idx = NULL;
	struct old_parity *o = &p->old;
	vbfs_err err;
	o->dat_fd = -1;
	if ((err = vbfs_index_open(index_dir, NULL, &idx, why))) {
		snprintf(p->reuse_note, sizeof p->reuse_note, "no old parity: index %s: %s",
			 index_dir, why[0] ? why : vbfs_strerror(err));
		return;
	}
	err = parity_idx_load(idx, dir, &o->l, &o->digests, why);
	vbfs_index_close(idx);
	if (err == VBFS_ERR_NOTFOUND && !p->o.reuse_index)
		return;   /* a rebuild in place of an index without parity */
	if (err) {
		snprintf(p->reuse_note, sizeof p->reuse_note, "no old parity reused: %s",
			 why[0] ? why : vbfs_strerror(err));
		return;
	}
	snprintf(path, sizeof path, "%s/parity.dat", dir);
	uint64_t ng = o->l.ngroups_full + o->l.ngroups_short;
	if ((o->dat_fd = parity_open_reg(path)) < 0 ||
	    !(o->by_key = malloc((ng + 1) * sizeof *o->by_key))) {
		snprintf(p->reuse_note, sizeof p->reuse_note, "no old parity reused: %s: %s",
			 path, strerror(errno));
		old_close(o);
		return;
	}
	for (uint64_t g = 0; g < ng; g++)
		o->by_key[g] = g;
	pthread_mutex_lock(&sort_lock);
	key_ctx = o;
	qsort(o->by_key, ng, sizeof *o->by_key, by_key);
	pthread_mutex_unlock(&sort_lock);
	p->have_old = true;
}

/* The old group with this key, or -1 (a zero key is no key). */
static int64_t old_find(const vbfs_parity_plan *p, const uint8_t key[VBFS_DIGEST_LEN])
{
	static const uint8_t zero[VBFS_DIGEST_LEN];
	const struct old_parity *o = &p->old;
	if (!p->have_old || !memcmp(key, zero, VBFS_DIGEST_LEN))
		return -1;
	uint64_t lo = 0, hi = o->l.ngroups_full + o->l.ngroups_short;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = memcmp(o->l.groups[o->by_key[mid]].key, key, VBFS_DIGEST_LEN);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t ng = o->l.ngroups_full + o->l.ngroups_short;
	return lo < ng && !memcmp(o->l.groups[o->by_key[lo]].key, key, VBFS_DIGEST_LEN)
	       ? (int64_t)o->by_key[lo] : -1;
}

/* ---- the plan -------------------------------------------------------------------- */

vbfs_err vbfs_parity_plan_new(const struct vbfs_parity_opts *o, vbfs_parity_plan **out,
			      char why[VBFS_WHY_LEN])
{
	vbfs_parity_plan *p = calloc(1, sizeof *p);
	char dir[PATH_MAX];
	*out = NULL;
	why[0] = '\0';
	if (!p)
		return VBFS_ERR_NOMEM;
	p->o = *o;
	p->dat_fd = -1;
	p->old.dat_fd = -1;
	pthread_mutex_init(&p->err_lock, NULL);
	for (int i = 0; i < STRIPE_LOCKS; i++)
		pthread_mutex_init(&p->slock[i], NULL);
	p->l.k = o->k;
	p->l.m = o->m;
	snprintf(p->dat, sizeof p->dat, "%s/parity.dat", o->dir);
	snprintf(p->idx, sizeof p->idx, "%s/parity.idx", o->dir);
	snprintf(p->dat_tmp, sizeof p->dat_tmp, "%s/parity.dat.tmp", o->dir);
	snprintf(p->idx_tmp, sizeof p->idx_tmp, "%s/parity.idx.tmp", o->dir);
	/* The old parity, before the build changes the index that vouches for it. */
	if (o->reuse_index) {
		if (o->reuse_dir)
			snprintf(dir, sizeof dir, "%s", o->reuse_dir);
		else
			snprintf(dir, sizeof dir, "%s/parity", o->reuse_index);
		old_open(p, o->reuse_index, dir);
	} else {
		char data[PATH_MAX];
		struct stat st;
		snprintf(data, sizeof data, "%s/data.mdb", o->index);
		if (stat(data, &st) == 0)   /* else a new index: no old parity, nothing to say */
			old_open(p, o->index, o->dir);
	}
	*out = p;
	return VBFS_OK;
}

void parity_plan_begin(vbfs_parity_plan *p, uint32_t block_size)
{
	p->began = true;
	p->l.bs = block_size;
	p->l.s = parity_depth(p->l.m, block_size);
}

vbfs_err parity_plan_add(vbfs_parity_plan *p, uint64_t id, uint64_t size, const char *path,
			 bool hashed, int64_t *handle)
{
	struct parity_layout *l = &p->l;
	if (l->nfiles == p->cap) {
		uint64_t cap = p->cap ? 2 * p->cap : 64;
		struct parity_file *nf = realloc(l->files, cap * sizeof *nf);
		if (!nf)
			return VBFS_ERR_NOMEM;
		l->files = nf;
		struct pfile_extra *nx = realloc(p->x, cap * sizeof *nx);
		if (!nx)
			return VBFS_ERR_NOMEM;
		p->x = nx;
		p->cap = cap;
	}
	struct pfile_extra *x = &p->x[l->nfiles];
	memset(x, 0, sizeof *x);
	if (!(x->path = strdup(path)))
		return VBFS_ERR_NOMEM;
	x->path_hash = parity_path_hash(path, strlen(path));
	x->hashed = hashed;
	l->files[l->nfiles] = (struct parity_file){ .id = id, .size = size };
	*handle = (int64_t)l->nfiles++;
	return VBFS_OK;
}

/*
 * Accumulators come zeroed and already mapped (MAP_POPULATE): faulting
 * fresh pages in one by one as the encoder first touches them cost more
 * than the encoding itself on the test VM (16 MiB: 280 ms by faults, 25 ms
 * populated).
 */
static unsigned char *acc_alloc(size_t n)
{
	void *a = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		       -1, 0);
	return a == MAP_FAILED ? NULL : a;
}

static void acc_free(struct gstate *st)
{
	if (st->acc)
		munmap(st->acc, st->acc_len);
	st->acc = NULL;
}

static void free_gstates(vbfs_parity_plan *p)
{
	uint64_t ng = p->l.ngroups_full + p->l.ngroups_short;
	for (uint64_t g = 0; p->gs && g < ng; g++) {
		acc_free(&p->gs[g]);
		pthread_mutex_destroy(&p->gs[g].lock);
	}
	free(p->gs);
	p->gs = NULL;
}

/* Cut one sequence into groups (parity_cut on its members' keys). */
static vbfs_err cut_sequence(vbfs_parity_plan *p, bool shorts, uint64_t total, uint64_t *cap)
{
	struct parity_layout *l = &p->l;
	uint64_t *key = malloc((total + 1) * sizeof *key);
	if (!key)
		return VBFS_ERR_NOMEM;
	for (uint64_t pos = 0; pos < total; pos++) {
		uint64_t block;
		uint32_t len;
		uint64_t f = parity_member_at(l, shorts, pos, &block, &len);
		key[pos] = parity_member_key(p->x[f].path_hash, shorts ? UINT64_MAX : block);
	}
	for (uint64_t at = 0; at < total; ) {
		uint64_t n = parity_cut(key + at, total - at, l->k, l->s);
		uint64_t ng = l->ngroups_full + l->ngroups_short;
		if (ng == *cap) {
			uint64_t c = *cap ? 2 * *cap : 64;
			struct parity_group *g = realloc(l->groups, c * sizeof *g);
			if (!g) {
				free(key);
				return VBFS_ERR_NOMEM;
			}
			l->groups = g;
			*cap = c;
		}
		memset(&l->groups[ng], 0, sizeof l->groups[ng]);
		l->groups[ng].n = n;
		if (shorts)
			l->ngroups_short++;
		else
			l->ngroups_full++;
		at += n;
	}
	free(key);
	return VBFS_OK;
}

/* Groups from the files: both sequences cut, then everything derived. */
static vbfs_err plan_groups(vbfs_parity_plan *p)
{
	struct parity_layout *l = &p->l;
	uint64_t cap = 0;
	vbfs_err err;
	free(l->groups);
	l->groups = NULL;
	l->ngroups_full = l->ngroups_short = 0;
	/* the sequences first (cut_sequence walks them), then the groups */
	if ((err = parity_layout_derive(l)) && err != VBFS_ERR_FORMAT)
		return err;
	if ((err = cut_sequence(p, false, l->nfull, &cap)) ||
	    (err = cut_sequence(p, true, l->nshort, &cap)) || (err = parity_layout_derive(l)))
		return err;
	for (uint64_t pos = 0; pos < l->nshort; pos++)
		p->x[l->short_order[pos]].short_pos = pos;
	free(p->digests);
	if (!(p->digests = calloc(l->nstripes * l->m + 1, VBFS_DIGEST_LEN)))
		return VBFS_ERR_NOMEM;
	return VBFS_OK;
}

static vbfs_err open_dat_tmp(vbfs_parity_plan *p, char *why)
{
	if (p->dat_fd >= 0)
		return ftruncate(p->dat_fd, 0) == 0 ? VBFS_OK : VBFS_ERR_IO;
	if (mkdir(p->o.dir, 0755) < 0 && errno != EEXIST) {
		vbfs_whyf(why, "parity directory %s: %s", p->o.dir, strerror(errno));
		return VBFS_ERR_IO;
	}
	if ((p->dat_fd = open(p->dat_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		vbfs_whyf(why, "%s: %s", p->dat_tmp, strerror(errno));
		return VBFS_ERR_IO;
	}
	return VBFS_OK;
}

static vbfs_err check_size(const vbfs_parity_plan *p, char *why)
{
	if ((uint64_t)(p->l.k + p->l.m + 1) * p->l.bs > PARITY_REBUILD_BYTES) {
		/* A rebuild holds a whole stripe in memory, in the mount too. */
		vbfs_whyf(why, "--parity %u+%u: a rebuild would hold %u blocks of %u KiB in "
			  "memory, over %u MiB: choose a smaller K", p->l.k, p->l.m,
			  p->l.k + p->l.m + 1, p->l.bs >> 10, PARITY_REBUILD_BYTES >> 20);
		return VBFS_ERR_USAGE;
	}
	return VBFS_OK;
}

vbfs_err parity_plan_layout(vbfs_parity_plan *p, char why[VBFS_WHY_LEN])
{
	vbfs_err err;
	if ((err = check_size(p, why)) || (err = plan_groups(p)) || (err = open_dat_tmp(p, why)))
		return err;
	if (parity_codec_init(&p->codec, (int)p->l.k, (int)p->l.m))
		return VBFS_ERR_NOMEM;
	uint64_t ng = p->l.ngroups_full + p->l.ngroups_short;
	if (!(p->gs = calloc(ng + 1, sizeof *p->gs)))
		return VBFS_ERR_NOMEM;
	for (uint64_t g = 0; g < ng; g++) {
		struct parity_group *gr = &p->l.groups[g];
		bool shorts = g >= p->l.ngroups_full, all = true;
		pthread_mutex_init(&p->gs[g].lock, NULL);
		for (uint64_t q = 0; q < gr->n && all; q++) {
			uint64_t block;
			uint32_t len;
			all = p->x[parity_member_at(&p->l, shorts, gr->start + q, &block, &len)].hashed;
		}
		p->gs[g].hashed = all;
	}
	p->laid_out = true;
	return VBFS_OK;
}

/* A group fully fed: hash its fragments, write them at its place. */
static void finish_inline(vbfs_parity_plan *p, uint64_t g)
{
	struct parity_layout *l = &p->l;
	struct parity_group *gr = &l->groups[g];
	struct gstate *st = &p->gs[g];
	bool shorts = g >= l->ngroups_full;
	uint32_t s = (uint32_t)((gr->n + l->k - 1) / l->k);
	char why[VBFS_WHY_LEN];
	vbfs_err err = VBFS_OK;
	for (uint32_t j = 0; j < s && !err; j++) {
		uint32_t len = parity_stripe_len(l, gr, shorts, j);
		uint64_t off = parity_stripe_off(l, gr, shorts, j);
		for (uint32_t i = 0; i < l->m && !err; i++) {
			unsigned char *frag = st->acc + ((size_t)j * l->m + i) * l->bs;
			vbfs_sha256(frag, len, p->digests + ((gr->first_stripe + j) * l->m + i) *
				    VBFS_DIGEST_LEN);
			err = pwrite_all(p->dat_fd, frag, len, off + (uint64_t)i * len, "parity.dat", why);
		}
	}
	acc_free(st);
	if (err)
		plan_fail(p, err, why);
	else
		st->done = true;
}

void parity_plan_feed(vbfs_parity_plan *p, int64_t handle, uint64_t block, const void *data,
		      uint32_t len)
{
	struct parity_layout *l = &p->l;
	if (!p->laid_out || handle < 0 || p->abort)
		return;
	bool shorts = len < l->bs && block == l->files[handle].size / l->bs;
	uint64_t pos = shorts ? p->x[handle].short_pos : l->full_prefix[handle] + block;
	const struct parity_group *gr = parity_group_of(l, shorts, pos);
	if (!gr)
		return;
	uint64_t g = (uint64_t)(gr - l->groups);
	struct gstate *st = &p->gs[g];
	struct parity_place pl;
	unsigned char *ptrs[PARITY_MAX_FRAGS], *acc;
	pthread_mutex_lock(&st->lock);
	if (st->hashed && !st->spoiled && !st->done && !st->acc) {
		size_t n = (size_t)((gr->n + l->k - 1) / l->k) * l->m * l->bs;
		if ((st->acc = acc_alloc(n)))
			st->acc_len = n;
		else
			st->spoiled = true;   /* encoded after the build instead */
	}
	acc = st->hashed && !st->spoiled && !st->done ? st->acc : NULL;
	pthread_mutex_unlock(&st->lock);
	if (!acc)
		return;
	parity_place(pos - gr->start, gr->n, l->k, &pl);
	if (data) {   /* a hole adds nothing: zeros */
		pthread_mutex_t *sl = &p->slock[(gr->first_stripe + pl.stripe) % STRIPE_LOCKS];
		for (uint32_t i = 0; i < l->m; i++)
			ptrs[i] = acc + ((size_t)pl.stripe * l->m + i) * l->bs;
		pthread_mutex_lock(sl);
		parity_encode_update(&p->codec, (int)len, (int)pl.index, (unsigned char *)data, ptrs);
		pthread_mutex_unlock(sl);
	}
	/* Counted after its encode: the feeder that counts the last member
	 * knows every other member's encode is complete. */
	if (atomic_fetch_add(&st->fed, 1) + 1 == gr->n) {
		pthread_mutex_lock(&st->lock);
		if (!st->spoiled)
			finish_inline(p, g);
		pthread_mutex_unlock(&st->lock);
	}
}

/* Spoiled: not done; the accumulators stay until the group's last feed or
 * the plan's end (a feeder may be using them). */
static void spoil_group(vbfs_parity_plan *p, bool shorts, uint64_t pos)
{
	const struct parity_group *gr = parity_group_of(&p->l, shorts, pos);
	if (!gr)
		return;
	struct gstate *st = &p->gs[gr - p->l.groups];
	pthread_mutex_lock(&st->lock);
	st->spoiled = true;
	st->done = false;
	pthread_mutex_unlock(&st->lock);
}

void parity_plan_spoil(vbfs_parity_plan *p, int64_t handle)
{
	struct parity_layout *l = &p->l;
	if (!p->laid_out || handle < 0)
		return;
	uint64_t first = l->full_prefix[handle], end = l->full_prefix[handle + 1];
	for (uint64_t pos = first; pos < end; ) {
		const struct parity_group *gr = parity_group_of(l, false, pos);
		if (!gr)
			break;
		spoil_group(p, false, pos);
		pos = gr->start + gr->n;
	}
	if (parity_short_len(l, (uint64_t)handle))
		spoil_group(p, true, p->x[handle].short_pos);
}

void vbfs_parity_plan_free(vbfs_parity_plan *p)
{
	if (!p)
		return;
	if (p->dat_fd >= 0) {
		close(p->dat_fd);
		unlink(p->dat_tmp);   /* renamed already when the build succeeded */
	}
	free_gstates(p);
	for (uint64_t f = 0; p->x && f < p->l.nfiles; f++)
		free(p->x[f].path);
	free(p->x);
	parity_layout_free(&p->l);
	parity_codec_free(&p->codec);
	free(p->digests);
	free(p->mdig);
	old_close(&p->old);
	pthread_mutex_destroy(&p->err_lock);
	for (int i = 0; i < STRIPE_LOCKS; i++)
		pthread_mutex_destroy(&p->slock[i]);
	free(p);
}

/* ---- after the build: check the plan against the index ----------------------------- */

/* A file of the plan that the committed index holds as planned: a regular
 * file with its own good digests, of the planned size. */
static bool as_planned(vbfs_txn *t, const struct parity_file *f)
{
	struct vbfs_entry e;
	return !vbfs_txn_get(t, f->id, &e) && e.type == VBFS_T_REG && e.size == f->size &&
	       vbfs_entry_data_id(&e) == e.id &&
	       !(e.flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE));
}

/* Without a build's walk (vbfs_build was not given the plan): the index's
 * files in id order. */
static int collect(void *ctx, const struct vbfs_entry *e)
{
	vbfs_parity_plan *p = ctx;
	int64_t h;
	char *path;
	if (e->type != VBFS_T_REG || !e->size || (e->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)) ||
	    vbfs_entry_data_id(e) != e->id)
		return 0;   /* a hard link's bytes are its holder's, covered once */
	if (!(path = strndup(e->path, e->path_len)))
		return 1;
	vbfs_err err = parity_plan_add(p, e->id, e->size, path, false, &h);
	free(path);
	return err != VBFS_OK;
}

/* The plan must describe the index as committed.  Files the build could not
 * index as walked (gone, changed, unreadable) leave the plan, and then the
 * groups are cut again and nothing encoded inline is kept. */
static vbfs_err plan_check(vbfs_parity_plan *p, vbfs_index *idx, char *why)
{
	struct parity_layout *l = &p->l;
	vbfs_txn *t;
	vbfs_err err;
	bool replan = false;
	if ((err = vbfs_txn_begin(idx, &t)))
		return err;
	if (!p->began) {
		parity_plan_begin(p, vbfs_index_meta(idx)->block_size);
		err = vbfs_txn_foreach(t, collect, p);
		replan = true;
	} else {
		uint64_t kept = 0;
		for (uint64_t f = 0; f < l->nfiles; f++) {
			if (!as_planned(t, &l->files[f])) {
				free(p->x[f].path);
				replan = true;
				continue;
			}
			l->files[kept] = l->files[f];
			p->x[kept++] = p->x[f];
		}
		l->nfiles = kept;
	}
	vbfs_txn_end(t);
	if (err)
		return err;
	if (replan || !p->laid_out) {
		free_gstates(p);
		p->laid_out = false;
		if ((err = parity_plan_layout(p, why)))
			return err;
		uint64_t ng = l->ngroups_full + l->ngroups_short;
		for (uint64_t g = 0; g < ng; g++)
			p->gs[g].hashed = false;   /* nothing inline survives a new cut */
	}
	return VBFS_OK;
}

/* Every member's digest (full sequence, then short), and each group's key. */
static vbfs_err group_keys(vbfs_parity_plan *p, vbfs_index *idx)
{
	struct parity_layout *l = &p->l;
	vbfs_txn *t;
	vbfs_err err;
	free(p->mdig);
	if (!(p->mdig = malloc((l->nfull + l->nshort + 1) * VBFS_DIGEST_LEN)))
		return VBFS_ERR_NOMEM;
	if ((err = vbfs_txn_begin(idx, &t)))
		return err;
	for (uint64_t g = 0; g < l->ngroups_full + l->ngroups_short && !err; g++) {
		struct parity_group *gr = &l->groups[g];
		bool shorts = g >= l->ngroups_full;
		uint8_t hdr[4 * 4 + 8];
		EVP_MD_CTX *h = EVP_MD_CTX_new();
		if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
			EVP_MD_CTX_free(h);
			err = VBFS_ERR_NOMEM;
			break;
		}
		idx_be64(hdr, gr->n);
		memcpy(hdr + 8, &l->k, 4);
		memcpy(hdr + 12, &l->m, 4);
		memcpy(hdr + 16, &l->bs, 4);
		hdr[20] = shorts;
		hdr[21] = hdr[22] = hdr[23] = 0;
		EVP_DigestUpdate(h, hdr, sizeof hdr);
		for (uint64_t q = 0; q < gr->n && !err; q++) {
			uint64_t block, pos = gr->start + q;
			uint32_t len;
			uint64_t f = parity_member_at(l, shorts, pos, &block, &len);
			uint8_t *d = p->mdig + ((shorts ? l->nfull : 0) + pos) * VBFS_DIGEST_LEN;
			if ((err = vbfs_txn_digest(t, l->files[f].id, block, d)))
				break;
			uint8_t lb[4] = { (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
					  (uint8_t)(len >> 24) };
			EVP_DigestUpdate(h, lb, 4);
			EVP_DigestUpdate(h, d, VBFS_DIGEST_LEN);
		}
		EVP_DigestFinal_ex(h, gr->key, NULL);
		EVP_MD_CTX_free(h);
	}
	vbfs_txn_end(t);
	return err;
}

/* ---- after the build: reuse or encode each remaining group ------------------------- */

/* Copy group g's fragments from the old parity's group `og`, each checked
 * against its old digest.  False (nothing usable) on any mismatch. */
static bool copy_old(vbfs_parity_plan *p, uint64_t g, uint64_t og, unsigned char *buf)
{
	struct parity_layout *l = &p->l;
	const struct parity_layout *ol = &p->old.l;
	const struct parity_group *gr = &l->groups[g], *ogr = &ol->groups[og];
	bool shorts = g >= l->ngroups_full, oshorts = og >= ol->ngroups_full;
	uint32_t s = (uint32_t)((gr->n + l->k - 1) / l->k);
	uint8_t d[VBFS_DIGEST_LEN];
	char why[VBFS_WHY_LEN];
	if (shorts != oshorts || gr->n != ogr->n)
		return false;   /* the key covers both; a forged old index aside */
	for (uint32_t j = 0; j < s; j++) {
		uint32_t len = parity_stripe_len(l, gr, shorts, j);
		uint64_t off = parity_stripe_off(l, gr, shorts, j);
		uint64_t ooff = parity_stripe_off(ol, ogr, oshorts, j);
		if (parity_stripe_len(ol, ogr, oshorts, j) != len)
			return false;
		for (uint32_t i = 0; i < l->m; i++) {
			const uint8_t *want = p->old.digests +
				((ogr->first_stripe + j) * ol->m + i) * VBFS_DIGEST_LEN;
			if (vbfs_block_read(p->old.dat_fd, buf, len, ooff + (uint64_t)i * len) !=
			    (ssize_t)len)
				return false;
			vbfs_sha256(buf, len, d);
			if (memcmp(d, want, VBFS_DIGEST_LEN)) {
				pthread_mutex_lock(&p->err_lock);
				p->fragments_refused++;
				pthread_mutex_unlock(&p->err_lock);
				return false;
			}
			vbfs_err err = pwrite_all(p->dat_fd, buf, len, off + (uint64_t)i * len,
						  "parity.dat", why);
			if (err) {
				plan_fail(p, err, why);
				return false;
			}
			memcpy(p->digests + ((gr->first_stripe + j) * l->m + i) * VBFS_DIGEST_LEN,
			       d, VBFS_DIGEST_LEN);
		}
	}
	return true;
}

/* One worker's open file while encoding. */
struct reader {
	int64_t open_file;
	int fd;
};

/* Read a member from the store and check it against its digest; what
 * cannot be read counts as zeros.  False when the bytes are not the
 * indexed ones (the group then gets no key: never reused). */
static bool read_member(vbfs_parity_plan *p, int store_fd, struct reader *rd, uint64_t f,
			uint64_t block, uint32_t len, const uint8_t *digest, void *data)
{
	uint8_t d[VBFS_DIGEST_LEN];
	if (rd->open_file != (int64_t)f) {
		if (rd->fd >= 0)
			close(rd->fd);
		struct stat st;   /* type first: a FIFO or device is never opened */
		rd->fd = vbfs_store_open_reg(store_fd, p->x[f].path, &st);
		rd->open_file = (int64_t)f;
	}
	ssize_t got = rd->fd >= 0 ? vbfs_block_read(rd->fd, data, len, block * p->l.bs) : -1;
	if (got < (ssize_t)len) {
		memset((char *)data + (got > 0 ? got : 0), 0, len - (size_t)(got > 0 ? got : 0));
		return false;
	}
	vbfs_sha256(data, len, d);
	return !memcmp(d, digest, VBFS_DIGEST_LEN);
}

struct encoder {
	vbfs_parity_plan *p;
	int store_fd;
	uint64_t *todo;                 /* groups left after the build */
};

/*
 * A pool task: group todo[task], taken from the old parity when its key is
 * there and every fragment checks, else encoded from the store.  `buf` is
 * the worker's: 2*S*m accumulators of block size, then one member.
 */
static void encode_task(void *ctx, size_t task, void *buf)
{
	struct encoder *e = ctx;
	vbfs_parity_plan *p = e->p;
	struct parity_layout *l = &p->l;
	uint64_t g = e->todo[task];
	struct parity_group *gr = &l->groups[g];
	bool shorts = g >= l->ngroups_full, keyed = true;
	uint32_t s = (uint32_t)((gr->n + l->k - 1) / l->k);
	unsigned char *acc = buf, *data = acc + (size_t)2 * l->s * l->m * l->bs;
	unsigned char *ptrs[PARITY_MAX_FRAGS];
	struct reader rd = { .open_file = -1, .fd = -1 };
	char why[VBFS_WHY_LEN];
	vbfs_err err = VBFS_OK;
	uint64_t bytes = 0;

	int64_t og = old_find(p, gr->key);
	if (og >= 0 && copy_old(p, g, (uint64_t)og, data)) {
		pthread_mutex_lock(&p->err_lock);
		p->groups_reused++;
		pthread_mutex_unlock(&p->err_lock);
		return;
	}
	memset(acc, 0, (size_t)s * l->m * l->bs);
	for (uint64_t q = 0; q < gr->n && !p->abort; q++) {
		uint64_t block, pos = gr->start + q;
		uint32_t len;
		uint64_t f = parity_member_at(l, shorts, pos, &block, &len);
		const uint8_t *d = p->mdig + ((shorts ? l->nfull : 0) + pos) * VBFS_DIGEST_LEN;
		keyed &= read_member(p, e->store_fd, &rd, f, block, len, d, data);
		bytes += len;
		struct parity_place pl;
		parity_place(q, gr->n, l->k, &pl);
		for (uint32_t i = 0; i < l->m; i++)
			ptrs[i] = acc + ((size_t)pl.stripe * l->m + i) * l->bs;
		parity_encode_update(&p->codec, (int)len, (int)pl.index, data, ptrs);
	}
	if (rd.fd >= 0)
		close(rd.fd);
	if (!keyed)
		memset(gr->key, 0, VBFS_DIGEST_LEN);
	for (uint32_t j = 0; j < s && !err && !p->abort; j++) {
		uint32_t len = parity_stripe_len(l, gr, shorts, j);
		uint64_t off = parity_stripe_off(l, gr, shorts, j);
		for (uint32_t i = 0; i < l->m && !err; i++) {
			unsigned char *frag = acc + ((size_t)j * l->m + i) * l->bs;
			vbfs_sha256(frag, len, p->digests + ((gr->first_stripe + j) * l->m + i) *
				    VBFS_DIGEST_LEN);
			err = pwrite_all(p->dat_fd, frag, len, off + (uint64_t)i * len, "parity.dat", why);
		}
	}
	if (err)
		plan_fail(p, err, why);
	pthread_mutex_lock(&p->err_lock);
	p->groups_encoded++;
	p->bytes_read += bytes;
	pthread_mutex_unlock(&p->err_lock);
}

static vbfs_err encode_rest(vbfs_parity_plan *p, char *why)
{
	struct parity_layout *l = &p->l;
	uint64_t ng = l->ngroups_full + l->ngroups_short, ntodo = 0;
	struct encoder e = { .p = p, .store_fd = -1 };
	struct pool pool;
	vbfs_err err = VBFS_OK;
	if (!(e.todo = malloc((ng + 1) * sizeof *e.todo)))
		return VBFS_ERR_NOMEM;
	for (uint64_t g = 0; g < ng; g++)
		if (!p->gs[g].done)
			e.todo[ntodo++] = g;
	if (!ntodo)
		goto out;
	if ((e.store_fd = vbfs_store_open_root(p->o.store)) < 0) {
		vbfs_whyf(why, "store %s: %s", p->o.store, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	if (pool_start(&pool, p->o.jobs, ntodo, ((size_t)2 * l->s * l->m + 1) * l->bs, encode_task,
		       &e, &p->abort)) {
		err = VBFS_ERR_NOMEM;
		goto out;
	}
	while (atomic_load(&pool.next) < ntodo) {
		if (p->o.stop && *p->o.stop)
			p->abort = 1;
		usleep(20000);
	}
	pool_join(&pool);
	if (p->o.stop && *p->o.stop)
		err = VBFS_ERR_INTERRUPTED;
out:
	if (e.store_fd >= 0)
		close(e.store_fd);
	free(e.todo);
	if (!err && p->err) {
		err = p->err;
		memcpy(why, p->err_why, VBFS_WHY_LEN);
	}
	return err;
}

static vbfs_err write_idx(vbfs_parity_plan *p, uint8_t digest[VBFS_DIGEST_LEN], char *why)
{
	uint8_t *buf;
	size_t n;
	vbfs_err err = parity_idx_encode(&p->l, p->digests, &buf, &n);
	if (err)
		return err;
	vbfs_sha256(buf, n, digest);
	int fd = open(p->idx_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(buf);
		vbfs_whyf(why, "%s: %s", p->idx_tmp, strerror(errno));
		return VBFS_ERR_IO;
	}
	err = pwrite_all(fd, buf, n, 0, p->idx_tmp, why);
	if (!err && fsync(fd) < 0) {
		vbfs_whyf(why, "fsync %s: %s", p->idx_tmp, strerror(errno));
		err = VBFS_ERR_IO;
	}
	close(fd);
	free(buf);
	return err;
}

vbfs_err vbfs_parity_build(vbfs_parity_plan *p, struct vbfs_parity_result *r,
			   char why[VBFS_WHY_LEN])
{
	uint8_t digest[VBFS_DIGEST_LEN];
	vbfs_index *index = NULL;
	double start = vbfs_monotonic();
	vbfs_err err;
	uint64_t inline_done = 0;

	memset(r, 0, sizeof *r);
	why[0] = '\0';
	if (p->err) {   /* a write while the build hashed */
		memcpy(why, p->err_why, VBFS_WHY_LEN);
		err = p->err;
		goto out;
	}
	if ((err = vbfs_index_open(p->o.index, NULL, &index, why)))
		goto out;
	if (p->began && p->l.bs != vbfs_index_meta(index)->block_size) {
		vbfs_whyf(why, "the index's block size changed during the build");
		err = VBFS_ERR_FORMAT;
		goto out;
	}
	if ((err = plan_check(p, index, why)) || (err = group_keys(p, index)))
		goto out;
	for (uint64_t g = 0; g < p->l.ngroups_full + p->l.ngroups_short; g++)
		inline_done += p->gs[g].done;
	if ((err = encode_rest(p, why)))
		goto out;
	if (fsync(p->dat_fd) < 0) {
		vbfs_whyf(why, "fsync %s: %s", p->dat_tmp, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	if ((err = write_idx(p, digest, why)))
		goto out;
	/* parity.dat first: until parity.idx is renamed and the index records
	 * its digest, an open refuses the pair rather than mixing builds. */
	if (rename(p->dat_tmp, p->dat) < 0 || rename(p->idx_tmp, p->idx) < 0) {
		vbfs_whyf(why, "rename into %s: %s", p->o.dir, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	close(p->dat_fd);
	p->dat_fd = -1;
	{
		int dfd = open(p->o.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	vbfs_index_close(index);
	index = NULL;
	if ((err = vbfs_index_put_meta(p->o.index, PARITY_META_KEY, digest, sizeof digest,
				       p->o.sign_key, why)))
		goto out;
	r->files = p->l.nfiles;
	r->stripes = p->l.nstripes;
	r->parity_bytes = p->l.dat_size;
	for (uint64_t f = 0; f < p->l.nfiles; f++)
		r->data_bytes += p->l.files[f].size;
	r->groups = p->l.ngroups_full + p->l.ngroups_short;
	r->groups_inline = inline_done;
	r->groups_encoded = inline_done + p->groups_encoded;
	r->groups_reused = p->groups_reused;
	r->fragments_refused = p->fragments_refused;
	r->bytes_read = p->bytes_read;
out:
	snprintf(r->reuse_note, sizeof r->reuse_note, "%s", p->reuse_note);
	if (err == VBFS_ERR_INTERRUPTED && !why[0])
		vbfs_whyf(why, "interrupted: the parity was not written");
	if (err)
		unlink(p->idx_tmp);
	vbfs_index_close(index);
	r->seconds = vbfs_monotonic() - start;
	return err;
}
