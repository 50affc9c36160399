/*
 * scrub.c - `vbfsctl verify`: every block of every indexed file, checked
 * on all cores through vbfs_block_verify(), without mounting.  The same
 * judgement as the mount: vbfs_file_open() for the file, then the block
 * verdict for each block.
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

#define CHUNK_BLOCKS 64u

struct scrub_file {
	char *path;
	struct vbfs_entry e;        /* path/target point at `path` / NULL */
	uint64_t nblocks;
};

struct scrub_task { size_t file; uint64_t first, count; };

struct scrub {
	const struct vbfs_scrub_opts *o;
	struct vbfs_scrub_result *r;
	int store_fd;
	uint32_t block_size;
	struct scrub_file *files;
	size_t nfiles, capfiles;
	struct scrub_task *tasks;
	size_t ntasks;
	pthread_mutex_t lock;       /* guards r and the event callback */
	uint64_t bytes_done, bytes_total;
	volatile int abort;
	/* for other-entry checks */
	vbfs_txn *txn;
	vbfs_err err;
	char *why;
};

static void report(struct scrub *s, const struct vbfs_event *ev)
{
	pthread_mutex_lock(&s->lock);
	s->r->events[ev->kind]++;
	if (vbfs_event_is_damage(ev->kind))
		s->r->damage_events++;
	if (s->o->event)
		s->o->event(s->o->event_ctx, ev);
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
		vbfs_err err = vbfs_txn_digest(txn, f->e.id, b, expected);
		vbfs_txn_end(txn);
		if (err)
			continue;   /* reported as an index event by the block loop's rule */
		vbfs_event_from_check(&ev, &f->e, b, s->block_size, expected, &chk);
		ev.kind = file_ev->kind;
		ev.detail = file_ev->detail;
		judge(s, f, b, expected, &ev, heal_buf);
	}
}

static void scrub_task(void *ctx, size_t t, void *buf)
{
	struct scrub *s = ctx;
	struct scrub_task *task = &s->tasks[t];
	struct scrub_file *f = &s->files[task->file];
	struct vbfs_event ev;
	int fd;
	uint64_t blocks = 0, bytes = 0;
	vbfs_txn *txn = NULL;

	void *heal_buf = NULL;
	enum vbfs_file_state state = vbfs_file_open(s->store_fd, &f->e, &fd, &ev);
	/* File-level findings are reported once, by the file's first task. */
	if (state != VBFS_FILE_OK && task->first == 0)
		report(s, &ev);
	if (fd < 0) {
		if (s->o->heal && task->first == 0 && state != VBFS_FILE_DAMAGED)
			judge_lost_file(s, f, &ev, &heal_buf);
		goto done;
	}
	/* The task's digests, fetched in one short turn at the index (hashing
	 * happens outside it); memory stays bounded by the task size. */
	uint8_t digests[CHUNK_BLOCKS][VBFS_DIGEST_LEN];
	bool have[CHUNK_BLOCKS];
	if (vbfs_txn_begin(s->o->index, &txn)) {
		close(fd);
		goto done;
	}
	for (uint64_t i = 0; i < task->count; i++)
		have[i] = vbfs_txn_digest(txn, f->e.id, task->first + i, digests[i]) == VBFS_OK;
	vbfs_txn_end(txn);
	for (uint64_t b = task->first; b < task->first + task->count && !s->abort; b++) {
		struct vbfs_block_check chk;
		const uint8_t *expected = digests[b - task->first];
		if (!have[b - task->first]) {
			ev = (struct vbfs_event){ .kind = VBFS_EV_INDEX, .path = f->e.path,
				.path_len = f->e.path_len, .block = (int64_t)b,
				.offset = b * s->block_size, .detail = "index damaged: no digest for this block" };
			report(s, &ev);
			continue;
		}
		size_t len = vbfs_block_len(f->e.size, s->block_size, b);
		enum vbfs_verdict v = vbfs_block_verify(fd, b * s->block_size, len, expected, buf, &chk);
		blocks++;
		bytes += len;
		if (v != VBFS_BLOCK_OK) {
			vbfs_event_from_check(&ev, &f->e, b, s->block_size, expected, &chk);
			if (v > VBFS_BLOCK_TRANSIENT && s->o->heal)
				judge(s, f, b, expected, &ev, &heal_buf);
			else
				report(s, &ev);
		}
	}
	close(fd);
done:
	free(heal_buf);
	pthread_mutex_lock(&s->lock);
	s->r->blocks += blocks;
	s->r->bytes += bytes;
	for (uint64_t b = task->first; b < task->first + task->count; b++)
		s->bytes_done += vbfs_block_len(f->e.size, s->block_size, b);
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

static int collect(void *ctx, const struct vbfs_entry *e)
{
	struct scrub *s = ctx;
	if (e->type != VBFS_T_REG) {
		check_other(s, e);
		return 0;
	}
	if (s->nfiles == s->capfiles) {
		size_t cap = s->capfiles ? 2 * s->capfiles : 256;
		struct scrub_file *nf = realloc(s->files, cap * sizeof *nf);
		if (!nf) goto nomem;
		s->files = nf;
		s->capfiles = cap;
	}
	struct scrub_file *f = &s->files[s->nfiles];
	memset(f, 0, sizeof *f);
	if (!(f->path = strndup(e->path, e->path_len)))
		goto nomem;
	f->e = *e;
	f->e.path = f->path;
	f->e.target = NULL;
	f->e.target_len = 0;
	s->nfiles++;
	f->nblocks = (e->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)) ? 0
		     : vbfs_nblocks(e->size, s->block_size);
	s->bytes_total += e->size;
	return 0;
nomem:
	s->err = VBFS_ERR_NOMEM;
	return 1;
}

vbfs_err vbfs_scrub(const struct vbfs_scrub_opts *o, struct vbfs_scrub_result *r,
		    char why[VBFS_WHY_LEN])
{
	struct scrub s = { .o = o, .r = r, .store_fd = -1, .why = why };
	struct pool pool;
	double start = vbfs_monotonic();
	vbfs_err err;

	memset(r, 0, sizeof *r);
	why[0] = '\0';
	pthread_mutex_init(&s.lock, NULL);
	s.block_size = vbfs_index_meta(o->index)->block_size;
	if ((s.store_fd = vbfs_store_open_root(o->store)) < 0) {
		snprintf(why, VBFS_WHY_LEN, "store %s: %s", o->store, strerror(errno));
		err = VBFS_ERR_IO;
		goto out;
	}
	if ((err = vbfs_txn_begin(o->index, &s.txn)))
		goto out;
	err = vbfs_txn_foreach(s.txn, collect, &s);
	vbfs_txn_end(s.txn);
	if (!err)
		err = s.err;
	if (err) {
		if (!why[0])
			snprintf(why, VBFS_WHY_LEN, "reading the index: %s", vbfs_strerror(err));
		goto out;
	}
	r->files = s.nfiles;
	for (size_t i = 0; i < s.nfiles; i++)
		s.ntasks += s.files[i].nblocks ? (s.files[i].nblocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS : 1;
	if (!(s.tasks = calloc(s.ntasks ? s.ntasks : 1, sizeof *s.tasks))) {
		err = VBFS_ERR_NOMEM;
		goto out;
	}
	size_t t = 0;
	for (size_t i = 0; i < s.nfiles; i++) {
		uint64_t n = s.files[i].nblocks;
		if (!n)
			s.tasks[t++] = (struct scrub_task){ i, 0, 0 };
		for (uint64_t b = 0; b < n; b += CHUNK_BLOCKS)
			s.tasks[t++] = (struct scrub_task){ i, b, n - b < CHUNK_BLOCKS ? n - b : CHUNK_BLOCKS };
	}
	if (s.ntasks && pool_start(&pool, o->jobs, s.ntasks, s.block_size, scrub_task, &s, &s.abort)) {
		err = VBFS_ERR_NOMEM;
		goto out;
	}
	if (s.ntasks) {
		/* Progress from this thread while the pool works. */
		while (atomic_load(&pool.next) < s.ntasks) {
			if (o->stop && *o->stop)
				s.abort = 1;
			if (o->progress) {
				pthread_mutex_lock(&s.lock);
				struct vbfs_progress p = { s.bytes_done, s.bytes_total, 0, s.nfiles };
				pthread_mutex_unlock(&s.lock);
				o->progress(o->progress_ctx, &p);
			}
			usleep(100000);
		}
		pool_join(&pool);
		if (o->progress) {
			struct vbfs_progress p = { s.bytes_done, s.bytes_total, s.nfiles, s.nfiles };
			o->progress(o->progress_ctx, &p);
		}
	}
	if (o->stop && *o->stop) {
		snprintf(why, VBFS_WHY_LEN, "interrupted");
		err = VBFS_ERR_INTERRUPTED;
	}
out:
	if (s.store_fd >= 0)
		close(s.store_fd);
	for (size_t i = 0; i < s.nfiles; i++) {
		free(s.files[i].path);
	}
	free(s.files);
	free(s.tasks);
	pthread_mutex_destroy(&s.lock);
	r->seconds = vbfs_monotonic() - start;
	return err;
}
