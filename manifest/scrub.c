/*
 * scrub.c - `vbfsctl verify`: every block of every indexed file, checked
 * on all cores through vbfs_block_verify(), without mounting.  The same
 * judgement as the mount: vbfs_file_open() for the file, then the block
 * verdict for each block.  A hard link that is still the inode its holder
 * is (both as recorded) is not hashed again: its bytes are the holder's.
 *
 * Scale-out (all optional): a shard of the index's blocks (shard.h), a
 * deadline, a resume state that carries a pass across runs (resume.h),
 * or just the findings of an earlier report (--errors-only).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "index_internal.h"
#include "pool.h"
#include "resume.h"
#include "shard.h"

#define CHUNK_BLOCKS 64u
#define SYNC_SECONDS 5.0        /* resume state flushed to disk this often */

struct scrub_file {
	char *path;
	struct vbfs_entry e;        /* path/target point at `path` / NULL */
	uint64_t nblocks;
};

/*
 * Blocks [first, first+count) of one file; `seq` numbers the first in the
 * plan (the resume bitmap's bit).  `lead`: this task reports the findings
 * about the file as a whole (missing, changed...), so exactly one task of
 * one shard does.
 */
struct scrub_task { size_t file; uint64_t first, count, seq; bool lead; };

struct scrub {
	const struct vbfs_scrub_opts *o;
	struct vbfs_scrub_result *r;
	int store_fd;
	uint32_t block_size;
	struct vbfs_shard shard;
	uint64_t pos;               /* bytes of regular files laid before the entry */
	struct scrub_file *files;
	size_t nfiles, capfiles;
	struct scrub_task *tasks;
	size_t ntasks, captasks;
	struct vbfs_scrub_target *only; /* sorted copy of o->only */
	struct scrub_file *others;  /* non-regular entries to check (after the state opens) */
	size_t nothers, capothers;
	struct vbfs_resume *state;
	pthread_mutex_t lock;       /* guards r, bytes_done, state's log and the event callback */
	uint64_t bytes_done;
	volatile int abort;
	vbfs_err err;
	char *why;
};

/* A finding: counted, logged to the resume state, passed on -- once. */
static void report(struct scrub *s, const struct vbfs_event *ev)
{
	pthread_mutex_lock(&s->lock);
	if (s->state && vbfs_resume_known(s->state, ev))
		goto out;       /* found by an earlier run of this pass, already counted */
	if (s->state && !s->err && (s->err = vbfs_resume_log(s->state, ev, s->why)))
		s->abort = 1;
	if (!vbfs_event_is_refusal(ev)) {   /* a replica's bad copy is not the store's damage */
		s->r->events[ev->kind]++;
		if (vbfs_event_is_damage(ev->kind))
			s->r->damage_events++;
	}
	if (s->o->event)
		s->o->event(s->o->event_ctx, ev);
out:
	pthread_mutex_unlock(&s->lock);
}

/*
 * With sources (--replica, --parity): is there good bytes for a damaged
 * block?  `ev` is the store's event for it; reported with `repairable` and
 * the healer, then each refused candidate, then `healed`, in that order.
 */
struct refused_log { struct vbfs_event v[16]; unsigned n; };

static void refused_add(void *ctx, const struct vbfs_event *ev)
{
	struct refused_log *log = ctx;
	if (log->n < 16)
		log->v[log->n++] = *ev;
}

static void judge(struct scrub *s, const struct scrub_file *f, uint64_t b,
		  const uint8_t expected[VBFS_DIGEST_LEN], struct vbfs_event *ev, void **heal_buf)
{
	struct refused_log log = { .n = 0 };
	const char *source = NULL;
	if (!*heal_buf)
		*heal_buf = vbfs_block_buf(s->block_size);
	if (*heal_buf)
		source = vbfs_heal_block(s->o->heal, &f->e, b, expected, *heal_buf,
					 refused_add, &log);
	ev->repair = source ? VBFS_REPAIR_YES : VBFS_REPAIR_NO;
	ev->source = source;
	pthread_mutex_lock(&s->lock);
	s->r->blocks_damaged++;
	s->r->blocks_repairable += source != NULL;
	pthread_mutex_unlock(&s->lock);
	report(s, ev);
	for (unsigned i = 0; i < log.n; i++)
		report(s, &log.v[i]);
	if (source) {
		struct vbfs_event healed;
		vbfs_event_healed(&healed, &f->e, b, s->block_size, expected, source);
		report(s, &healed);
	}
}

/* The store's file is gone or replaced: with sources, judge every block. */
static void judge_lost_file(struct scrub *s, const struct scrub_file *f,
			    const struct vbfs_event *file_ev, void **heal_buf)
{
	vbfs_txn *txn = NULL;
	for (uint64_t b = 0; b < f->nblocks && !s->abort; b++) {
		uint8_t expected[VBFS_DIGEST_LEN];
		struct vbfs_block_check chk = { .verdict = VBFS_BLOCK_MISSING };
		struct vbfs_event ev;
		if (vbfs_txn_begin(s->o->index, &txn))
			return;
		vbfs_err err = vbfs_txn_digest(txn, vbfs_entry_data_id(&f->e), b, expected);
		vbfs_txn_end(txn);
		if (err)
			continue;   /* reported as an index event by the block loop's rule */
		vbfs_event_from_check(&ev, &f->e, b, s->block_size, expected, &chk);
		ev.kind = file_ev->kind;
		ev.detail = file_ev->detail;
		judge(s, f, b, expected, &ev, heal_buf);
	}
}

static bool past_deadline(struct scrub *s)
{
	if (s->o->deadline > 0 && vbfs_monotonic() >= s->o->deadline)
		s->abort = 1;
	return s->abort;
}

static bool done_before(const struct scrub *s, uint64_t seq)
{
	return s->state && vbfs_resume_done(s->state, seq);
}

/* Is follower `f` (open as fd) still the very inode its holder path is,
 * both as recorded at build?  Then the holder's scrub covers its bytes. */
static bool same_inode_as_holder(struct scrub *s, const struct scrub_file *f, int fd,
				 vbfs_txn *txn)
{
	struct stat st, hst;
	struct vbfs_entry h;
	if (!f->e.link || fstat(fd, &st) < 0 || (uint64_t)st.st_ino != f->e.store_ino ||
	    (uint64_t)st.st_dev != f->e.store_dev)
		return false;
	if (vbfs_txn_get(txn, f->e.link, &h) || h.store_ino != f->e.store_ino ||
	    h.store_dev != f->e.store_dev)
		return false;
	char *hpath = strndup(h.path, h.path_len);
	bool same = hpath && vbfs_store_lstat(s->store_fd, hpath, &hst, NULL, 0) == 0 &&
		    hst.st_ino == st.st_ino && hst.st_dev == st.st_dev;
	free(hpath);
	return same;
}

static void scrub_task(void *ctx, size_t t, void *buf)
{
	struct scrub *s = ctx;
	struct scrub_task *task = &s->tasks[t];
	struct scrub_file *f = &s->files[task->file];
	struct vbfs_event ev;
	int fd;
	uint64_t blocks = 0, bytes = 0, progress = 0;
	vbfs_txn *txn = NULL;

	void *heal_buf = NULL;
	uint64_t todo = 0;
	for (uint64_t i = 0; i < task->count; i++)
		todo += !done_before(s, task->seq + i);
	if (!todo && !(task->lead && task->count == 0))
		return;         /* every block verified by an earlier run of this pass */
	enum vbfs_file_state state = vbfs_file_open(s->store_fd, &f->e, &fd, &ev);
	if (state != VBFS_FILE_OK && task->lead)
		report(s, &ev);
	if (fd < 0) {
		if (s->o->heal && task->lead && state != VBFS_FILE_DAMAGED)
			judge_lost_file(s, f, &ev, &heal_buf);
		for (uint64_t b = task->first; b < task->first + task->count; b++)
			progress += vbfs_block_len(f->e.size, s->block_size, b);
		goto done;
	}
	/* The task's digests, fetched in one short turn at the index (hashing
	 * happens outside it); memory stays bounded by the task size. */
	uint8_t digests[CHUNK_BLOCKS][VBFS_DIGEST_LEN];
	bool have[CHUNK_BLOCKS], hole[CHUNK_BLOCKS] = { false };
	uint64_t data_id = vbfs_entry_data_id(&f->e);
	if (vbfs_txn_begin(s->o->index, &txn)) {
		close(fd);
		goto done;
	}
	if (same_inode_as_holder(s, f, fd, txn)) {
		vbfs_txn_end(txn);
		close(fd);
		for (uint64_t i = 0; i < task->count; i++) {
			progress += vbfs_block_len(f->e.size, s->block_size, task->first + i);
			if (s->state)
				vbfs_resume_mark(s->state, task->seq + i);
		}
		goto done;
	}
	for (uint64_t i = 0; i < task->count; i++) {
		have[i] = vbfs_txn_digest(txn, data_id, task->first + i, digests[i]) == VBFS_OK;
		if (have[i] && (f->e.flags & VBFS_F_HOLES))
			have[i] = vbfs_txn_hole(txn, data_id, task->first + i, &hole[i]) == VBFS_OK;
	}
	vbfs_txn_end(txn);
	for (uint64_t i = 0; i < task->count && !past_deadline(s); i++) {
		uint64_t b = task->first + i;
		struct vbfs_block_check chk;
		if (done_before(s, task->seq + i))
			continue;
		if (!have[i]) {
			ev = (struct vbfs_event){ .kind = VBFS_EV_INDEX, .path = f->e.path,
				.path_len = f->e.path_len, .block = (int64_t)b,
				.offset = b * s->block_size, .detail = "index damaged: no digest for this block" };
			report(s, &ev);
			continue;
		}
		size_t len = vbfs_block_len(f->e.size, s->block_size, b);
		enum vbfs_verdict v = vbfs_block_judge(fd, b * s->block_size, len, hole[i],
						       digests[i], buf, &chk);
		blocks++;
		bytes += len;
		progress += len;
		if (v != VBFS_BLOCK_OK || chk.layout != VBFS_LAYOUT_SAME) {
			vbfs_event_from_check(&ev, &f->e, b, s->block_size, digests[i], &chk);
			if (v > VBFS_BLOCK_TRANSIENT && s->o->heal)
				judge(s, f, b, digests[i], &ev, &heal_buf);
			else
				report(s, &ev);
		}
		/* Marked done last, after the finding is logged (and the trace
		 * written): a kill before that checks the block again. */
		if (s->o->block_done)
			s->o->block_done(s->o->block_ctx, &f->e, b);
		if (s->state)
			vbfs_resume_mark(s->state, task->seq + i);
	}
	close(fd);
done:
	free(heal_buf);
	pthread_mutex_lock(&s->lock);
	s->r->blocks += blocks;
	s->r->bytes += bytes;
	s->r->run_blocks += blocks;
	s->r->run_bytes += bytes;
	s->bytes_done += progress;
	pthread_mutex_unlock(&s->lock);
}

/* Non-regular entries: is the type, and a symlink's target, as indexed? */
static void check_other(struct scrub *s, const struct vbfs_entry *e)
{
	struct stat st;
	char target[4096];
	char *path = strndup(e->path, e->path_len);
	struct vbfs_event ev = { .path = e->path, .path_len = e->path_len, .block = -1 };
	if (!path)
		return;
	if (vbfs_dir_unknown(e, &ev))
		report(s, &ev);
	if (vbfs_store_lstat(s->store_fd, path, &st, target, sizeof target) < 0) {
		ev.kind = errno == ENOENT ? VBFS_EV_MISSING : VBFS_EV_UNREADABLE;
		ev.detail = errno == ENOENT ? "entry is absent from the store" : strerror(errno);
		if (e->id != VBFS_ROOT_ID)
			report(s, &ev);
	} else if ((st.st_mode & S_IFMT) != (e->mode & S_IFMT)) {
		ev.kind = VBFS_EV_CHANGED;
		ev.detail = "type differs from the index";
		report(s, &ev);
	} else if (e->type == VBFS_T_LNK &&
		   (strlen(target) != e->target_len || memcmp(target, e->target, e->target_len))) {
		ev.kind = VBFS_EV_CHANGED;
		ev.detail = "symlink target differs from the index";
		report(s, &ev);
	}
	free(path);
}

/* The bytes of a regular file the scrub reads (shard.h: damaged and
 * unreadable-at-build files count 0). */
static uint64_t scanned_bytes(const struct vbfs_entry *e)
{
	if (e->type != VBFS_T_REG || (e->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)))
		return 0;
	return e->size;
}

static int sum_bytes(void *ctx, const struct vbfs_entry *e)
{
	((struct vbfs_scrub_result *)ctx)->index_bytes += scanned_bytes(e);
	return 0;
}

static int cmp_target(const void *a, const void *b)
{
	const struct vbfs_scrub_target *x = a, *y = b;
	size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
	int c = memcmp(x->path, y->path, n);
	if (!c && x->path_len != y->path_len)
		c = x->path_len < y->path_len ? -1 : 1;
	return c ? c : (x->block > y->block) - (x->block < y->block);
}

/* --errors-only: the targets naming this path ([*first, *end) of s->only). */
static void targets_of(const struct scrub *s, const struct vbfs_entry *e,
		       size_t *first, size_t *end)
{
	struct vbfs_scrub_target key = { e->path, e->path_len, -1 };
	size_t lo = 0, hi = s->o->nonly;
	while (lo < hi) {       /* first target >= (path, -1) */
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_target(&s->only[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*first = *end = lo;
	while (*end < s->o->nonly && s->only[*end].path_len == e->path_len &&
	       !memcmp(s->only[*end].path, e->path, e->path_len))
		(*end)++;
}

static bool add_task(struct scrub *s, size_t file, uint64_t first, uint64_t count, bool lead)
{
	struct scrub_task *nt = vbfs_grow(s->tasks, &s->captasks, s->ntasks, sizeof *nt, 1024);
	if (!nt)
		return false;
	s->tasks = nt;
	uint64_t seq = s->r->plan_blocks;
	s->tasks[s->ntasks++] = (struct scrub_task){ file, first, count, seq, lead };
	s->r->plan_blocks += count;
	for (uint64_t b = first; b < first + count; b++)
		s->r->plan_bytes += vbfs_block_len(s->files[file].e.size, s->block_size, b);
	return true;
}

/* Plan one regular file: which of its blocks this scrub checks, in tasks. */
static bool plan_file(struct scrub *s, size_t fi, uint64_t pos)
{
	struct scrub_file *f = &s->files[fi];
	uint64_t first, end;
	bool lead;
	if (s->only) {
		size_t a, z;
		targets_of(s, &f->e, &a, &z);
		if (s->only[a].block >= 0) {    /* just the blocks named (sorted, maybe twice) */
			int64_t last = -1;
			for (bool lead1 = true; a < z; a++) {
				int64_t b = s->only[a].block;
				if (b == last || (uint64_t)b >= f->nblocks)
					continue;
				if (!add_task(s, fi, (uint64_t)b, 1, lead1))
					return false;
				lead1 = false;
				last = b;
			}
			if (last < 0)           /* no block left to check: the file itself */
				return add_task(s, fi, 0, 0, true);
			return true;
		}
		first = 0;                      /* the whole entry was named */
		end = f->nblocks;
		lead = true;
	} else {
		vbfs_shard_blocks(s->shard, s->r->index_bytes, pos, f->nblocks, s->block_size,
				  &first, &end);
		lead = vbfs_shard_owner(pos, s->r->index_bytes, s->shard.n) == s->shard.k;
	}
	if (first == end)
		return !lead || add_task(s, fi, first, 0, true);
	for (uint64_t b = first; b < end; b += CHUNK_BLOCKS)
		if (!add_task(s, fi, b, end - b < CHUNK_BLOCKS ? end - b : CHUNK_BLOCKS, lead && b == first))
			return false;
	return true;
}

static int collect(void *ctx, const struct vbfs_entry *e)
{
	struct scrub *s = ctx;
	uint64_t pos = s->pos;
	bool mine;
	s->pos += scanned_bytes(e);
	if (s->only) {
		size_t a, z;
		targets_of(s, e, &a, &z);
		mine = a < z;
	} else
		mine = vbfs_shard_owner(pos, s->r->index_bytes, s->shard.n) == s->shard.k;
	if (e->type != VBFS_T_REG) {
		if (!mine)
			return 0;
		struct scrub_file *no = vbfs_grow(s->others, &s->capothers, s->nothers,
						  sizeof *no, 64);
		if (!no) goto nomem;
		s->others = no;
		struct scrub_file *x = &s->others[s->nothers];
		memset(x, 0, sizeof *x);
		x->e = *e;
		/* path and target in one allocation: "path\0target" */
		if (!(x->path = malloc(e->path_len + e->target_len + 2)))
			goto nomem;
		memcpy(x->path, e->path, e->path_len);
		x->path[e->path_len] = '\0';
		memcpy(x->path + e->path_len + 1, e->target ? e->target : "", e->target_len);
		x->path[e->path_len + 1 + e->target_len] = '\0';
		x->e.path = x->path;
		x->e.target = x->path + e->path_len + 1;
		s->nothers++;
		return 0;
	}
	uint64_t nblocks = scanned_bytes(e) ? vbfs_nblocks(e->size, s->block_size) : 0;
	uint64_t first = 0, end = 0;
	if (!s->only)
		vbfs_shard_blocks(s->shard, s->r->index_bytes, pos, nblocks, s->block_size, &first, &end);
	if (!mine && first == end)
		return 0;       /* another shard's file */
	struct scrub_file *nf = vbfs_grow(s->files, &s->capfiles, s->nfiles, sizeof *nf, 256);
	if (!nf) goto nomem;
	s->files = nf;
	struct scrub_file *f = &s->files[s->nfiles];
	memset(f, 0, sizeof *f);
	if (!(f->path = strndup(e->path, e->path_len)))
		goto nomem;
	f->e = *e;
	f->e.path = f->path;
	f->e.target = NULL;
	f->e.target_len = 0;
	f->nblocks = nblocks;
	s->nfiles++;
	if (mine)
		s->r->files++;
	if (!plan_file(s, s->nfiles - 1, pos))
		goto nomem;
	return 0;
nomem:
	s->err = VBFS_ERR_NOMEM;
	return 1;
}

/* Resume: count what earlier runs of the pass did, replay their findings. */
static void resume_prior(struct scrub *s)
{
	for (size_t t = 0; t < s->ntasks; t++) {
		const struct scrub_task *task = &s->tasks[t];
		for (uint64_t i = 0; i < task->count; i++)
			if (vbfs_resume_done(s->state, task->seq + i)) {
				uint32_t len = vbfs_block_len(s->files[task->file].e.size, s->block_size,
							      task->first + i);
				s->r->blocks++;
				s->r->bytes += len;
				s->bytes_done += len;
			}
	}
	for (size_t i = 0; i < vbfs_resume_nevents(s->state); i++) {
		const struct vbfs_event *ev = vbfs_resume_event(s->state, i);
		s->r->events[ev->kind]++;
		if (vbfs_event_is_damage(ev->kind))
			s->r->damage_events++;
		if (s->o->event)
			s->o->event(s->o->event_ctx, ev);
	}
}

static void progress(struct scrub *s, bool end)
{
	if (!s->o->progress)
		return;
	pthread_mutex_lock(&s->lock);
	struct vbfs_progress p = { s->bytes_done, s->r->plan_bytes, end ? s->nfiles : 0, s->nfiles };
	pthread_mutex_unlock(&s->lock);
	s->o->progress(s->o->progress_ctx, &p);
}

vbfs_err vbfs_scrub(const struct vbfs_scrub_opts *o, struct vbfs_scrub_result *r,
		    char why[VBFS_WHY_LEN])
{
	struct scrub s = { .o = o, .r = r, .store_fd = -1, .why = why,
			   .shard = { o->shard_k, o->shard_n } };
	struct pool pool;
	double start = vbfs_monotonic(), synced = start;
	vbfs_txn *txn;
	vbfs_err err;

	memset(r, 0, sizeof *r);
	why[0] = '\0';
	pthread_mutex_init(&s.lock, NULL);
	s.block_size = vbfs_index_meta(o->index)->block_size;
	if (s.shard.n && s.shard.k >= s.shard.n) {
		vbfs_whyf(why, "shard %u/%u: K must be below N", s.shard.k, s.shard.n);
		err = VBFS_ERR_USAGE;
		goto out;
	}
	if (o->only) {         /* errors-only, maybe with nothing to check again */
		if (!(s.only = malloc((o->nonly ? o->nonly : 1) * sizeof *s.only))) {
			err = VBFS_ERR_NOMEM;
			goto out;
		}
		memcpy(s.only, o->only, o->nonly * sizeof *s.only);
		qsort(s.only, o->nonly, sizeof *s.only, cmp_target);
	}
	if ((s.store_fd = vbfs_store_open_root(o->store)) < 0) {
		vbfs_whyf(why, "store %s: %s", o->store, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	/* Two walks: the split needs the total before the first file is placed. */
	if ((err = vbfs_txn_begin(o->index, &txn)))
		goto out;
	err = vbfs_txn_foreach(txn, sum_bytes, r);
	if (!err)
		err = vbfs_txn_foreach(txn, collect, &s);
	vbfs_txn_end(txn);
	if (!err)
		err = s.err;
	if (err) {
		if (!why[0])
			vbfs_whyf(why, "reading the index: %s", vbfs_strerror(err));
		goto out;
	}
	r->range_begin = s.only ? 0 : vbfs_shard_begin(r->index_bytes, s.shard.k, s.shard.n ? s.shard.n : 1);
	r->range_end = s.only ? r->index_bytes
		       : vbfs_shard_begin(r->index_bytes, s.shard.k + 1, s.shard.n ? s.shard.n : 1);
	if (o->resume) {
		if ((err = vbfs_resume_open(o->resume, vbfs_index_meta(o->index)->root_digest, s.shard,
					    r->plan_blocks, s.block_size, &s.state, why)))
			goto out;
		r->pass = vbfs_resume_pass(s.state);
		r->runs = vbfs_resume_runs(s.state);
		resume_prior(&s);
	}
	for (size_t i = 0; i < s.nothers; i++)
		check_other(&s, &s.others[i].e);
	if (s.ntasks && pool_start(&pool, o->jobs, s.ntasks, s.block_size, scrub_task, &s, &s.abort)) {
		err = VBFS_ERR_NOMEM;
		goto out;
	}
	if (s.ntasks) {
		/* Progress, the deadline and the state's flushes from this thread
		 * while the pool works. */
		while (atomic_load(&pool.next) < s.ntasks && !s.abort) {
			if (o->stop && *o->stop)
				s.abort = 1;
			past_deadline(&s);
			progress(&s, false);
			if (s.state && vbfs_monotonic() - synced >= SYNC_SECONDS) {
				synced = vbfs_monotonic();
				vbfs_resume_sync(s.state, why);
			}
			usleep(100000);
		}
		pool_join(&pool);
		progress(&s, true);
	}
	r->complete = !s.abort && !(o->stop && *o->stop);
	if (s.err) {
		err = s.err;
		goto out;
	}
	if (s.state && (err = vbfs_resume_finish(s.state, r->complete, why)))
		goto out;
	if (o->stop && *o->stop) {
		vbfs_whyf(why, "interrupted");
		err = VBFS_ERR_INTERRUPTED;
	}
out:
	vbfs_resume_close(s.state);
	if (s.store_fd >= 0)
		close(s.store_fd);
	for (size_t i = 0; i < s.nfiles; i++) {
		free(s.files[i].path);
	}
	free(s.files);
	for (size_t i = 0; i < s.nothers; i++)
		free(s.others[i].path);
	free(s.others);
	free(s.tasks);
	free(s.only);
	pthread_mutex_destroy(&s.lock);
	r->seconds = vbfs_monotonic() - start;
	return err;
}
