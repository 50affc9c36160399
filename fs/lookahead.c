/*
 * lookahead.c - which files of a directory the reader will read next.
 *
 * Why: ops.c verifies the first blocks of the next files while the reader
 * copies the current one (prefetch_next_files).  That only pays when it
 * guesses the reader's order, and readers differ:
 *   - tar reads in readdir order and rsync in name order (the same here:
 *     the index lists a directory in name order);
 *   - cp -a sorts each directory by d_ino first (gnulib savedir's
 *     SAVEDIR_SORT_FASTREAD), and d_ino is the store's inode number
 *     (vbfs_entry_st_ino), an order of its own;
 *   - pgBackRest restores in the order of its manifest (by size): neither.
 * So the order is read off the reader: a file whose first read follows
 * the previous one in name order looks ahead in name order; one that
 * follows it in inode order looks ahead in inode order; anything else
 * (or a file that is neither first in its directory when the reader
 * changed directory) looks ahead not at all, so no block is hashed for
 * nothing.  When both orders agree for a step, the reader keeps the order
 * it followed before (name order first: what tar and rsync do).
 *
 * "Follows" counts only the files a reader reads: regular, not empty,
 * not marked damaged or unreadable (those get no look-ahead either).
 *
 * The order is judged when the first read of a file arrives, before it is
 * answered (lookahead_note): the reader's next file may arrive as soon as
 * the answer is out, before the look-ahead itself (lookahead_next) runs.
 *
 * Inode order needs the directory sorted by inode: kept for the last
 * SORTED_DIRS directories (16 bytes per file), for directories of at most
 * SORTED_MAX such files.  Thread-safe: one mutex, held for a whole call
 * (first reads only, never across I/O or hashing).
 */
#include <stdlib.h>
#include <string.h>
#include "vbfs_fs.h"

#define SORTED_DIRS 4
#define SORTED_MAX  (1u << 20)

struct ino_id {
	uint64_t ino, id;
};

struct sorted_dir {
	uint64_t parent;                /* 0: unused */
	struct ino_id *v;
	size_t n;
	uint64_t last_use;
};

struct lookahead {
	pthread_mutex_t lock;
	/* the previous first read: its directory, id and shown inode */
	uint64_t parent, id, ino;
	enum lookahead_order order;     /* the order it followed */
	struct sorted_dir dirs[SORTED_DIRS];
	uint64_t clock;
};

struct lookahead *lookahead_new(void)
{
	struct lookahead *la = calloc(1, sizeof *la);
	if (la)
		pthread_mutex_init(&la->lock, NULL);
	return la;
}

void lookahead_free(struct lookahead *la)
{
	if (!la)
		return;
	for (unsigned i = 0; i < SORTED_DIRS; i++)
		free(la->dirs[i].v);
	pthread_mutex_destroy(&la->lock);
	free(la);
}

/* A file a reader reads, so one the look-ahead may queue. */
static bool read_by_readers(const struct vbfs_entry *e)
{
	return e->type == VBFS_T_REG && e->size &&
	       !(e->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE));
}

static int first_readable(void *ctx, const struct vbfs_entry *e)
{
	if (!read_by_readers(e))
		return 0;
	*(uint64_t *)ctx = e->id;
	return 1;
}

/* The id of the first readable child of `parent` after `after` (0: from
 * the first) in name order; 0 when there is none or on error. */
static uint64_t name_next(vbfs_txn *t, uint64_t parent, uint64_t after)
{
	uint64_t id = 0;
	if (vbfs_txn_readdir(t, parent, after, first_readable, &id))
		return 0;
	return id;
}

struct collect {
	const struct vbfs_meta *meta;
	struct ino_id *v;
	size_t n, cap;
	bool too_big;
};

static int collect_one(void *ctx, const struct vbfs_entry *e)
{
	struct collect *c = ctx;
	if (!read_by_readers(e))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		struct ino_id *v = cap <= SORTED_MAX ? realloc(c->v, cap * sizeof *v) : NULL;
		if (!v) {
			c->too_big = true;
			return 1;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct ino_id){ vbfs_entry_st_ino(c->meta, e), e->id };
	return 0;
}

static int cmp_ino_id(const void *a, const void *b)
{
	const struct ino_id *x = a, *y = b;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* `parent`'s readable children sorted by shown inode (none when there are
 * too many or memory ran out), or NULL when the index said no.  Under
 * la->lock. */
static struct sorted_dir *sorted(struct lookahead *la, const struct vbfs_meta *m, vbfs_txn *t,
				 uint64_t parent)
{
	struct sorted_dir *d = &la->dirs[0];
	for (unsigned i = 0; i < SORTED_DIRS; i++) {
		if (la->dirs[i].parent == parent) {
			la->dirs[i].last_use = ++la->clock;
			return &la->dirs[i];
		}
		if (la->dirs[i].last_use < d->last_use)
			d = &la->dirs[i];
	}
	struct collect c = { .meta = m };
	if (vbfs_txn_readdir(t, parent, 0, collect_one, &c)) {
		free(c.v);
		return NULL;
	}
	if (c.too_big) {   /* kept empty: never inode order, never listed again */
		free(c.v);
		c.v = NULL;
		c.n = 0;
	}
	if (c.n)
		qsort(c.v, c.n, sizeof *c.v, cmp_ino_id);
	free(d->v);
	*d = (struct sorted_dir){ .parent = parent, .v = c.v, .n = c.n, .last_use = ++la->clock };
	return d;
}

/* Index in d of the first element after (ino, id); (0, 0): the first. */
static size_t ino_after(const struct sorted_dir *d, uint64_t ino, uint64_t id)
{
	size_t lo = 0, hi = d->n;
	struct ino_id key = { ino, id };
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_ino_id(&d->v[mid], &key) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

enum lookahead_order lookahead_note(struct lookahead *la, const struct vbfs_meta *m, vbfs_txn *t,
				    const struct vbfs_entry *e)
{
	uint64_t ino = vbfs_entry_st_ino(m, e);
	enum lookahead_order order = LOOKAHEAD_NONE;
	pthread_mutex_lock(&la->lock);
	bool same_dir = la->parent == e->parent;
	uint64_t prev_id = same_dir ? la->id : 0, prev_ino = same_dir ? la->ino : 0;
	la->parent = e->parent;
	la->id = e->id;
	la->ino = ino;
	bool by_name = name_next(t, e->parent, prev_id) == e->id;
	if (by_name && la->order != LOOKAHEAD_INO) {
		order = LOOKAHEAD_NAME;
	} else {
		/* Both orders often agree for a step (f34 then f35); a reader
		 * that went by inode keeps doing so. */
		struct sorted_dir *d = sorted(la, m, t, e->parent);
		size_t at = d ? ino_after(d, prev_ino, prev_id) : 0;
		if (d && at < d->n && d->v[at].id == e->id)
			order = LOOKAHEAD_INO;
		else if (by_name)
			order = LOOKAHEAD_NAME;
	}
	la->order = order;
	pthread_mutex_unlock(&la->lock);
	return order;
}

void lookahead_next(struct lookahead *la, const struct vbfs_meta *m, vbfs_txn *t,
		    const struct vbfs_entry *e, enum lookahead_order order, vbfs_entry_fn fn, void *ctx)
{
	if (order == LOOKAHEAD_NAME) {
		vbfs_txn_readdir(t, e->parent, e->id, fn, ctx);
		return;
	}
	if (order != LOOKAHEAD_INO)
		return;
	pthread_mutex_lock(&la->lock);
	struct sorted_dir *d = sorted(la, m, t, e->parent);
	for (size_t i = d ? ino_after(d, vbfs_entry_st_ino(m, e), e->id) : 0; d && i < d->n; i++) {
		struct vbfs_entry next;
		if (vbfs_txn_get(t, d->v[i].id, &next) || fn(ctx, &next))
			break;
	}
	pthread_mutex_unlock(&la->lock);
}
