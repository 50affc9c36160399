/*
 * resume.c - the resume state of a scrub pass; see resume.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cjson_num.h"
#include "report.h"
#include "resume.h"
#include "shard.h"

#define STATE_MAGIC   "vbfs-scrub-state 1\n"
#define STATE_HDR     4096u
#define STATE_PAGE    4096u

struct vbfs_resume {
	char *path;
	int fd;
	uint8_t root[VBFS_DIGEST_LEN];
	struct vbfs_shard shard;
	uint64_t nblocks;
	uint32_t block_size;
	uint32_t pass, runs;
	int64_t pass_started;
	uint8_t *bitmap;            /* shared mapping of [STATE_HDR, log_start) */
	size_t bitmap_len;
	uint64_t log_start;
	struct logged *log;         /* findings of earlier runs, by (path, block, kind) */
	size_t nev;
};

struct logged {
	struct vbfs_event ev;
	cJSON *line;                /* keeps ev.detail alive */
	char *path;                 /* ev.path */
};

static size_t bitmap_len(uint64_t nblocks)
{
	uint64_t bytes = (nblocks + 7) / 8;
	return (size_t)((bytes + STATE_PAGE - 1) / STATE_PAGE * STATE_PAGE) + STATE_PAGE;
}

/* The header block: magic, one JSON line, spaces, a newline at the end. */
static void header_text(const struct vbfs_resume *r, bool complete, char out[STATE_HDR])
{
	char hex[VBFS_HEX_LEN], when[32];
	vbfs_hex(r->root, VBFS_DIGEST_LEN, hex);
	vbfs_rfc3339(r->pass_started, when);
	memset(out, ' ', STATE_HDR);
	int n = snprintf(out, STATE_HDR, STATE_MAGIC
		"{\"root\":\"%s\",\"shard\":{\"k\":%u,\"n\":%u},\"blocks\":%llu,"
		"\"block_size\":%u,\"pass\":%u,\"runs\":%u,\"pass_started\":\"%s\","
		"\"complete\":%s}\n", hex, r->shard.k, r->shard.n,
		(unsigned long long)r->nblocks, r->block_size, r->pass, r->runs, when,
		complete ? "true" : "false");
	out[n] = ' ';               /* snprintf's NUL: padding, not text */
	out[STATE_HDR - 1] = '\n';
}

static vbfs_err write_header(struct vbfs_resume *r, bool complete, char why[VBFS_WHY_LEN])
{
	char hdr[STATE_HDR];
	header_text(r, complete, hdr);
	if (vbfs_write_all(r->fd, hdr, STATE_HDR, 0) != 0) {
		vbfs_whyf(why, "state %s: %s", r->path, strerror(errno));
		return VBFS_ERR_IO;
	}
	return VBFS_OK;
}

/*
 * A new pass, in place (the file keeps its lock): cut the old bitmap and
 * log, grow a clean bitmap, and only then write the new header.  Killed
 * before the header is written, the file still says "the last pass is
 * complete" (or, when new, holds zeros), and the next run starts the new
 * pass again.
 */
static vbfs_err reset_state(struct vbfs_resume *r, char why[VBFS_WHY_LEN])
{
	const char *step = NULL;
	if (ftruncate(r->fd, STATE_HDR) != 0)
		step = "truncate";
	else if (ftruncate(r->fd, (off_t)r->log_start) != 0)
		step = "truncate";
	else if (fsync(r->fd) != 0)
		step = "fsync";
	if (step) {
		vbfs_whyf(why, "state %s: %s: %s", r->path, step, strerror(errno));
		return VBFS_ERR_IO;
	}
	vbfs_err err = write_header(r, false, why);
	if (!err && fsync(r->fd) != 0) {
		vbfs_whyf(why, "state %s: fsync: %s", r->path, strerror(errno));
		err = VBFS_ERR_IO;
	}
	return err;
}

static const cJSON *item(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* A header number: present, whole, 0..max (cjson_num.h); `bad` names the
 * first member that is not. */
static bool num(const cJSON *o, const char *key, uint64_t max, uint64_t *v, char bad[VBFS_WHY_LEN])
{
	vbfs_err err = vbfs_json_whole(o, key, max, v, bad);
	if (err == VBFS_ERR_NOTFOUND)
		vbfs_whyf(bad, "no \"%s\"", key);
	return err == VBFS_OK;
}

static void shard_name(struct vbfs_shard s, char out[48])
{
	if (s.n)
		snprintf(out, 48, "shard %u/%u", s.k, s.n);
	else
		snprintf(out, 48, "the whole index");
}

/*
 * Read and check the header.  *complete: the pass it describes is done.
 * VBFS_ERR_NOTFOUND: no state yet.
 */
static vbfs_err read_header(struct vbfs_resume *r, bool *complete, char why[VBFS_WHY_LEN])
{
	char hdr[STATE_HDR + 1], want[48], have[48], hex[VBFS_HEX_LEN];
	ssize_t got = pread(r->fd, hdr, STATE_HDR, 0);
	if (got < 0) {
		vbfs_whyf(why, "state %s: %s", r->path, strerror(errno));
		return VBFS_ERR_IO;
	}
	if (got == 0 || hdr[0] == '\0')
		return VBFS_ERR_NOTFOUND;   /* new, or killed while being created */
	hdr[got] = '\0';
	cJSON *o = NULL;
	if (got == STATE_HDR && !strncmp(hdr, STATE_MAGIC, sizeof STATE_MAGIC - 1))
		o = cJSON_Parse(hdr + sizeof STATE_MAGIC - 1);
	const cJSON *root = item(o, "root"), *sh = item(o, "shard"), *done = item(o, "complete");
	uint64_t k, n, blocks, bs, pass, runs;
	uint8_t digest[VBFS_DIGEST_LEN];
	char bad[VBFS_WHY_LEN] = "bad \"root\" or \"complete\"";
	vbfs_err err = VBFS_ERR_USAGE;
	if (!cJSON_IsString(root) || vbfs_unhex(root->valuestring, digest, sizeof digest) ||
	    !num(sh, "k", VBFS_SHARDS_MAX, &k, bad) || !num(sh, "n", VBFS_SHARDS_MAX, &n, bad) ||
	    !num(o, "blocks", VBFS_JSON_WHOLE_MAX, &blocks, bad) ||
	    !num(o, "block_size", VBFS_BLOCK_MAX, &bs, bad) || !num(o, "pass", UINT32_MAX, &pass, bad) ||
	    !num(o, "runs", UINT32_MAX, &runs, bad) || !cJSON_IsBool(done)) {
		vbfs_whyf(why, "state %s: not a vbfs scrub state (%s; refusing to overwrite it)",
			  r->path, o ? bad : "no header");
		goto out;
	}
	struct vbfs_shard theirs = { (uint32_t)k, (uint32_t)n };
	if (memcmp(digest, r->root, sizeof digest)) {
		vbfs_hex(r->root, VBFS_DIGEST_LEN, hex);
		vbfs_whyf(why, "state %s is of another index (root %.16s…, this index %.16s…)",
			  r->path, root->valuestring, hex);
		goto out;
	}
	if (theirs.k != r->shard.k || theirs.n != r->shard.n) {
		shard_name(theirs, have);
		shard_name(r->shard, want);
		vbfs_whyf(why, "state %s is of %s, not %s", r->path, have, want);
		goto out;
	}
	if (blocks != r->nblocks || bs != r->block_size) {
		vbfs_whyf(why, "state %s plans %llu blocks, this scrub %llu (not the same plan)",
			  r->path, (unsigned long long)blocks, (unsigned long long)r->nblocks);
		goto out;
	}
	r->pass = (uint32_t)pass;
	r->runs = (uint32_t)runs;
	const cJSON *ps = item(o, "pass_started");
	struct tm tm = { 0 };
	if (cJSON_IsString(ps) && strptime(ps->valuestring, "%Y-%m-%dT%H:%M:%SZ", &tm))
		r->pass_started = (int64_t)timegm(&tm);
	*complete = cJSON_IsTrue(done);
	err = VBFS_OK;
out:
	cJSON_Delete(o);
	return err;
}

static int by_key(const struct vbfs_event *a, const struct vbfs_event *b)
{
	size_t n = a->path_len < b->path_len ? a->path_len : b->path_len;
	int c = memcmp(a->path, b->path, n);
	if (c)
		return c;
	if (a->path_len != b->path_len)
		return a->path_len < b->path_len ? -1 : 1;
	if (a->block != b->block)
		return a->block < b->block ? -1 : 1;
	return (int)a->kind - (int)b->kind;
}

static int by_logged(const void *x, const void *y)
{
	return by_key(&((const struct logged *)x)->ev, &((const struct logged *)y)->ev);
}

/* Load the findings logged after the bitmap; cut a torn last line. */
static vbfs_err load_log(struct vbfs_resume *r, char why[VBFS_WHY_LEN])
{
	struct stat st;
	if (fstat(r->fd, &st) != 0)
		goto io;
	if ((uint64_t)st.st_size < r->log_start) {
		vbfs_whyf(why, "state %s: shorter than its header says (damaged)", r->path);
		return VBFS_ERR_USAGE;
	}
	size_t len = (size_t)((uint64_t)st.st_size - r->log_start), cap = 0;
	char *text = malloc(len + 1);
	if (!text)
		return VBFS_ERR_NOMEM;
	if (len && pread(r->fd, text, len, (off_t)r->log_start) != (ssize_t)len) {
		free(text);
		goto io;
	}
	text[len] = '\0';
	size_t good = 0;
	for (char *line = text, *nl; (nl = memchr(line, '\n', len - (size_t)(line - text))); line = nl + 1) {
		*nl = '\0';
		good = (size_t)(nl + 1 - text);
		cJSON *o = cJSON_Parse(line);
		if (!o)
			continue;       /* not ours to judge: skip it */
		{
			struct logged *nv = vbfs_grow(r->log, &cap, r->nev, sizeof *nv, 16);
			if (!nv) {
				cJSON_Delete(o);
				free(text);
				return VBFS_ERR_NOMEM;
			}
			r->log = nv;
		}
		struct logged *l = &r->log[r->nev];
		if (vbfs_event_from_json(o, &l->ev, &l->path, NULL) != VBFS_OK) {
			cJSON_Delete(o);
			continue;
		}
		l->line = o;
		r->nev++;
	}
	free(text);
	if (good != len && ftruncate(r->fd, (off_t)(r->log_start + good)) != 0)
		goto io;
	if (r->nev)
		qsort(r->log, r->nev, sizeof *r->log, by_logged);
	return VBFS_OK;
io:
	vbfs_whyf(why, "state %s: %s", r->path, strerror(errno));
	return VBFS_ERR_IO;
}

vbfs_err vbfs_resume_open(const char *path, const uint8_t root[VBFS_DIGEST_LEN],
			  struct vbfs_shard shard, uint64_t nblocks, uint32_t block_size,
			  struct vbfs_resume **out, char why[VBFS_WHY_LEN])
{
	struct vbfs_resume *r = calloc(1, sizeof *r);
	vbfs_err err = VBFS_ERR_NOMEM;
	bool complete = false;
	*out = NULL;
	if (!r || !(r->path = strdup(path)))
		goto fail;
	r->fd = -1;
	memcpy(r->root, root, VBFS_DIGEST_LEN);
	r->shard = shard;
	r->nblocks = nblocks;
	r->block_size = block_size;
	r->bitmap_len = bitmap_len(nblocks);
	r->log_start = STATE_HDR + r->bitmap_len;
	r->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (r->fd < 0) {
		vbfs_whyf(why, "state %s: %s", path, strerror(errno));
		err = VBFS_ERR_IO;
		goto fail;
	}
	/* One run per state at a time (a CronJob that overlaps, two shards
	 * given the same file): the second is refused, never interleaved. */
	if (flock(r->fd, LOCK_EX | LOCK_NB) != 0) {
		vbfs_whyf(why, "state %s is in use by another run", path);
		err = VBFS_ERR_USAGE;
		goto fail;
	}
	err = read_header(r, &complete, why);
	if (err == VBFS_ERR_NOTFOUND || (!err && complete)) {
		/* No state yet, or the last pass is done: a new pass. */
		r->pass = err ? 1 : r->pass + 1;
		r->runs = 0;
		r->pass_started = vbfs_now();
		if ((err = reset_state(r, why)))
			goto fail;
	} else if (err)
		goto fail;
	if ((err = load_log(r, why)))
		goto fail;
	r->bitmap = mmap(NULL, r->bitmap_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, STATE_HDR);
	if (r->bitmap == MAP_FAILED) {
		r->bitmap = NULL;
		vbfs_whyf(why, "state %s: mmap: %s", path, strerror(errno));
		err = VBFS_ERR_IO;
		goto fail;
	}
	r->runs++;
	if ((err = write_header(r, false, why)))
		goto fail;
	*out = r;
	return VBFS_OK;
fail:
	if (err == VBFS_ERR_NOMEM)
		vbfs_whyf(why, "state %s: out of memory", path);
	vbfs_resume_close(r);
	return err;
}

uint32_t vbfs_resume_pass(const struct vbfs_resume *r) { return r->pass; }
uint32_t vbfs_resume_runs(const struct vbfs_resume *r) { return r->runs; }

bool vbfs_resume_done(const struct vbfs_resume *r, uint64_t seq)
{
	return seq < r->nblocks &&
	       (__atomic_load_n(&r->bitmap[seq >> 3], __ATOMIC_RELAXED) >> (seq & 7)) & 1;
}

void vbfs_resume_mark(struct vbfs_resume *r, uint64_t seq)
{
	if (seq < r->nblocks)
		__atomic_fetch_or(&r->bitmap[seq >> 3], (uint8_t)(1u << (seq & 7)), __ATOMIC_RELAXED);
}

size_t vbfs_resume_nevents(const struct vbfs_resume *r) { return r->nev; }

const struct vbfs_event *vbfs_resume_event(const struct vbfs_resume *r, size_t i)
{
	return i < r->nev ? &r->log[i].ev : NULL;
}

bool vbfs_resume_known(const struct vbfs_resume *r, const struct vbfs_event *ev)
{
	size_t lo = 0, hi = r->nev;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = by_key(&r->log[mid].ev, ev);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

vbfs_err vbfs_resume_log(struct vbfs_resume *r, const struct vbfs_event *ev,
			 char why[VBFS_WHY_LEN])
{
	char *json = vbfs_event_json(ev);
	if (!json) {
		vbfs_whyf(why, "state %s: out of memory", r->path);
		return VBFS_ERR_NOMEM;
	}
	size_t n = strlen(json);
	json[n] = '\n';         /* replaces the NUL: one write, one line */
	off_t end = lseek(r->fd, 0, SEEK_END);
	int rc = end < 0 ? -1 : vbfs_write_all(r->fd, json, n + 1, end);
	free(json);
	if (rc != 0) {
		vbfs_whyf(why, "state %s: %s", r->path, strerror(errno));
		return VBFS_ERR_IO;
	}
	return VBFS_OK;
}

vbfs_err vbfs_resume_sync(struct vbfs_resume *r, char why[VBFS_WHY_LEN])
{
	if (msync(r->bitmap, r->bitmap_len, MS_SYNC) != 0 || fdatasync(r->fd) != 0) {
		vbfs_whyf(why, "state %s: sync: %s", r->path, strerror(errno));
		return VBFS_ERR_IO;
	}
	return VBFS_OK;
}

vbfs_err vbfs_resume_finish(struct vbfs_resume *r, bool complete, char why[VBFS_WHY_LEN])
{
	vbfs_err err = vbfs_resume_sync(r, why);
	if (!err && complete && !(err = write_header(r, true, why)))
		err = vbfs_resume_sync(r, why);
	return err;
}

void vbfs_resume_close(struct vbfs_resume *r)
{
	if (!r)
		return;
	if (r->bitmap)
		munmap(r->bitmap, r->bitmap_len);
	if (r->fd >= 0)
		close(r->fd);
	for (size_t i = 0; i < r->nev; i++) {
		cJSON_Delete(r->log[i].line);
		free(r->log[i].path);
	}
	free(r->log);
	free(r->path);
	free(r);
}
