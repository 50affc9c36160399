/*
 * export.c - one job: the exports of `vbfsctl export`: the index's regular
 * files as the seed's JSON manifest, as `sha256sum -c` lines, or as the
 * seed's per-file block lists, written so the other tools read them back
 * (Python's json.dumps for the manifest and its checksum, coreutils'
 * escaping for sha256sum).  Damaged and unreadable files are left out:
 * exporting them would certify the damage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats.h"
#include "json.h"

struct xfile {
	char *path;
	size_t path_len;
	uint64_t id, size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t flags;
	uint8_t digest[VBFS_DIGEST_LEN];
};

struct xcollect {
	struct xfile *v;
	size_t n, cap;
	bool oom;
};

static int xcollect_fn(void *ctx, const struct vbfs_entry *e)
{
	struct xcollect *c = ctx;
	if (e->type != VBFS_T_REG)
		return 0;
	struct xfile *v = vbfs_grow(c->v, &c->cap, c->n, sizeof *v, 256);
	if (!v) {
		c->oom = true;
		return 1;
	}
	c->v = v;
	struct xfile *x = &c->v[c->n];
	x->path = malloc(e->path_len + 1);
	if (!x->path) {
		c->oom = true;
		return 1;
	}
	memcpy(x->path, e->path, e->path_len);
	x->path[e->path_len] = '\0';
	x->path_len = e->path_len;
	x->id = vbfs_entry_data_id(e);   /* a hard link's digests are its holder's */
	x->size = e->size;
	x->mtime_sec = e->mtime_sec;
	x->mtime_nsec = e->mtime_nsec;
	x->flags = e->flags;
	memcpy(x->digest, e->file_digest, sizeof x->digest);
	c->n++;
	return 0;
}

static int xfile_cmp(const void *a, const void *b)
{
	const struct xfile *x = a, *y = b;
	size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
	int c = memcmp(x->path, y->path, n);
	return c ? c : (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

/* datetime.isoformat(): microseconds only when non-zero. */
static void py_isoformat(const struct tm *tm, long usec, char out[40])
{
	int n = snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d", tm->tm_year + 1900,
			 tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec);
	if (usec > 0 && usec < 1000000 && n > 0 && n < 32)
		snprintf(out + n, 40 - (size_t)n, ".%06d", (int)usec);
}

/* datetime.fromtimestamp(st_mtime).isoformat(): local time, and the float
 * st_mtime rounded half-even to microseconds as Python does. */
static void py_mtime(int64_t sec, uint32_t nsec, char out[40])
{
	double t = (double)sec + (double)nsec * 1e-9;
	/* no libm here: truncate, then round half to even by hand */
	double ip = (double)(int64_t)t;
	double x = (t - ip) * 1e6;
	long usec = (long)x;
	double rest = x - (double)usec;
	if (rest > 0.5 || (rest == 0.5 && (usec & 1)))
		usec++;
	else if (rest < -0.5 || (rest == -0.5 && (usec & 1)))
		usec--;
	time_t s = (time_t)ip;
	if (usec >= 1000000) {
		s++;
		usec -= 1000000;
	} else if (usec < 0) {
		s--;
		usec += 1000000;
	}
	struct tm tm;
	localtime_r(&s, &tm);
	py_isoformat(&tm, usec, out);
}

/* sha256sum's own escaping, so `sha256sum -c` reads the name back. */
static void sum_put_line(struct json_buf *b, const struct xfile *x)
{
	char hex[VBFS_HEX_LEN];
	bool esc = memchr(x->path, '\\', x->path_len) || memchr(x->path, '\n', x->path_len) ||
		   memchr(x->path, '\r', x->path_len);
	vbfs_hex(x->digest, VBFS_DIGEST_LEN, hex);
	if (esc)
		json_buf_putc(b, '\\');
	json_buf_puts(b, hex);
	json_buf_puts(b, "  ");
	for (size_t i = 0; i < x->path_len; i++) {
		char c = x->path[i];
		if (esc && c == '\\')
			json_buf_puts(b, "\\\\");
		else if (esc && c == '\n')
			json_buf_puts(b, "\\n");
		else if (esc && c == '\r')
			json_buf_puts(b, "\\r");
		else
			json_buf_putc(b, c);
	}
	json_buf_putc(b, '\n');
}

/* Flush the buffer when it grows: exports of big stores stream. */
static bool sb_flush(struct json_buf *b, FILE *out, bool force)
{
	if (b->oom)
		return false;
	if (b->len && (force || b->len >= (1u << 20))) {
		if (fwrite(b->p, 1, b->len, out) != b->len)
			return false;
		b->len = 0;
	}
	return true;
}

static vbfs_err export_sums(struct xcollect *c, FILE *out, char *why)
{
	struct json_buf b = { 0 };
	for (size_t i = 0; i < c->n; i++) {
		if (c->v[i].flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE))
			continue;
		sum_put_line(&b, &c->v[i]);
		if (!sb_flush(&b, out, false))
			break;
	}
	bool ok = sb_flush(&b, out, true);
	free(b.p);
	if (!ok) {
		vbfs_whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
		return b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_IO;
	}
	return VBFS_OK;
}

/*
 * The seed's manifest as its generate_manifest writes it (json.dump with
 * indent=2, keys in its order), and manifest_checksum as
 * vbfs_sha256(json.dumps(files, sort_keys=True)), so its Python accepts it.
 */
static vbfs_err export_seed(const struct vbfs_meta *meta, struct xcollect *c, FILE *out, char *why)
{
	struct json_buf b = { 0 }, canon = { 0 };
	char t[40], hex[VBFS_HEX_LEN];
	struct tm tm;
	time_t created = (time_t)(meta->updated ? meta->updated : meta->created);
	gmtime_r(&created, &tm);
	py_isoformat(&tm, 0, t);
	json_buf_puts(&b, "{\n  \"backup_id\": ");
	json_put_str(&b, meta->backup_id, strnlen(meta->backup_id, sizeof meta->backup_id), true);
	json_buf_puts(&b, ",\n  \"created_at\": \"");
	json_buf_puts(&b, t);
	json_buf_puts(&b, "\",\n  \"algorithm\": \"sha256\",\n  \"files\": [");
	json_buf_putc(&canon, '[');
	bool first = true;
	for (size_t i = 0; i < c->n; i++) {
		const struct xfile *x = &c->v[i];
		char size[24];
		if (x->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE))
			continue;
		vbfs_hex(x->digest, VBFS_DIGEST_LEN, hex);
		py_mtime(x->mtime_sec, x->mtime_nsec, t);
		snprintf(size, sizeof size, "%llu", (unsigned long long)x->size);
		/* pretty, in the seed's key order */
		json_buf_puts(&b, first ? "\n    {\n      \"path\": " : ",\n    {\n      \"path\": ");
		json_put_str(&b, x->path, x->path_len, true);
		json_buf_puts(&b, ",\n      \"checksum\": \"");
		json_buf_puts(&b, hex);
		json_buf_puts(&b, "\",\n      \"size\": ");
		json_buf_puts(&b, size);
		json_buf_puts(&b, ",\n      \"modified\": \"");
		json_buf_puts(&b, t);
		json_buf_puts(&b, "\"\n    }");
		/* canonical, as the checksum sees it */
		json_buf_puts(&canon, first ? "{\"checksum\": \"" : ", {\"checksum\": \"");
		json_buf_puts(&canon, hex);
		json_buf_puts(&canon, "\", \"modified\": \"");
		json_buf_puts(&canon, t);
		json_buf_puts(&canon, "\", \"path\": ");
		json_put_str(&canon, x->path, x->path_len, true);
		json_buf_puts(&canon, ", \"size\": ");
		json_buf_puts(&canon, size);
		json_buf_putc(&canon, '}');
		first = false;
	}
	json_buf_putc(&canon, ']');
	json_buf_puts(&b, first ? "],\n" : "\n  ],\n");
	vbfs_err err = VBFS_OK;
	if (b.oom || canon.oom) {
		vbfs_whyf(why, "out of memory");
		err = VBFS_ERR_NOMEM;
		goto out;
	}
	uint8_t d[VBFS_DIGEST_LEN];
	vbfs_sha256(canon.p, canon.len, d);
	vbfs_hex(d, sizeof d, hex);
	json_buf_puts(&b, "  \"manifest_checksum\": \"");
	json_buf_puts(&b, hex);
	json_buf_puts(&b, "\"\n}\n");
	if (!sb_flush(&b, out, true)) {
		vbfs_whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
		err = b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_IO;
	}
out:
	free(b.p);
	free(canon.p);
	return err;
}

/* The seed's BlockLevelVerifier list per file:
 * [{"block": n, "offset": o, "size": s, "checksum": hex}, ...]. */
static vbfs_err export_blocks(vbfs_index *idx, const struct vbfs_meta *meta,
			      struct xcollect *c, FILE *out, struct vbfs_export_result *r,
			      char *why)
{
	vbfs_txn *t;
	vbfs_err err = vbfs_txn_begin(idx, &t);
	if (err) {
		vbfs_whyf(why, "cannot read the index: %s", vbfs_strerror(err));
		return err;
	}
	struct json_buf b = { 0 };
	char num[96], hex[VBFS_HEX_LEN];
	uint32_t bs = meta->block_size;
	json_buf_puts(&b, "{\n  \"backup_id\": ");
	json_put_str(&b, meta->backup_id, strnlen(meta->backup_id, sizeof meta->backup_id), true);
	snprintf(num, sizeof num, ",\n  \"block_size\": %u,\n", bs);
	json_buf_puts(&b, num);
	json_buf_puts(&b, "  \"algorithm\": \"sha256\",\n  \"files\": {");
	bool first = true;
	for (size_t i = 0; i < c->n && !err; i++) {
		const struct xfile *x = &c->v[i];
		if (x->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE))
			continue;
		json_buf_puts(&b, first ? "\n    " : ",\n    ");
		first = false;
		json_put_str(&b, x->path, x->path_len, true);
		json_buf_puts(&b, ": [");
		uint64_t nb = vbfs_nblocks(x->size, bs);
		for (uint64_t k = 0; k < nb; k++) {
			uint8_t d[VBFS_DIGEST_LEN];
			err = vbfs_txn_digest(t, x->id, k, d);
			if (err) {
				vbfs_whyf(why, "%s: block %llu: %s", x->path, (unsigned long long)k,
				     vbfs_strerror(err));
				break;
			}
			vbfs_hex(d, sizeof d, hex);
			snprintf(num, sizeof num, "{\"block\": %llu, \"offset\": %llu, \"size\": %u, ",
				 (unsigned long long)k, (unsigned long long)(k * bs),
				 vbfs_block_len(x->size, bs, k));
			json_buf_puts(&b, k ? ",\n      " : "\n      ");
			json_buf_puts(&b, num);
			json_buf_puts(&b, "\"checksum\": \"");
			json_buf_puts(&b, hex);
			json_buf_puts(&b, "\"}");
			r->blocks++;
			if (!sb_flush(&b, out, false)) {
				err = VBFS_ERR_IO;
				vbfs_whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
				break;
			}
		}
		json_buf_puts(&b, nb ? "\n    ]" : "]");
	}
	vbfs_txn_end(t);
	if (!err) {
		json_buf_puts(&b, first ? "}\n}\n" : "\n  }\n}\n");
		if (!sb_flush(&b, out, true)) {
			err = b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_IO;
			vbfs_whyf(why, "write failed: %s", b.oom ? "out of memory" : strerror(errno));
		}
	}
	free(b.p);
	return err;
}

vbfs_err vbfs_export(vbfs_index *idx, enum vbfs_export_format f, FILE *out,
		     vbfs_export_skip_fn skip, void *skip_ctx,
		     struct vbfs_export_result *r, char why[VBFS_WHY_LEN])
{
	struct vbfs_export_result dummy;
	struct xcollect c = { 0 };
	const struct vbfs_meta *meta = vbfs_index_meta(idx);
	vbfs_txn *t;
	if (!r)
		r = &dummy;
	memset(r, 0, sizeof *r);
	vbfs_err err = vbfs_txn_begin(idx, &t);
	if (err) {
		vbfs_whyf(why, "cannot read the index: %s", vbfs_strerror(err));
		return err;
	}
	err = vbfs_txn_foreach(t, xcollect_fn, &c);
	vbfs_txn_end(t);
	if (!err && c.oom)
		err = VBFS_ERR_NOMEM;
	if (err) {
		vbfs_whyf(why, "cannot read the index: %s", vbfs_strerror(err));
		goto out;
	}
	if (c.n)
		qsort(c.v, c.n, sizeof *c.v, xfile_cmp);
	for (size_t i = 0; i < c.n; i++) {
		const struct xfile *x = &c.v[i];
		if (x->flags & (VBFS_F_DAMAGED | VBFS_F_UNREADABLE)) {
			/* exporting these would certify damage as the backup */
			r->skipped++;
			if (skip)
				skip(skip_ctx, x->path, x->flags);
			continue;
		}
		r->files++;
		if (f != VBFS_EXPORT_BLOCKS && !(x->flags & VBFS_F_FILE_DIGEST)) {
			vbfs_whyf(why, "index has no whole-file digests: rebuild with --file-digests");
			err = VBFS_ERR_NOTFOUND;
			goto out;
		}
	}
	switch (f) {
	case VBFS_EXPORT_MANIFEST:
		err = export_seed(meta, &c, out, why);
		break;
	case VBFS_EXPORT_SHA256SUM:
		err = export_sums(&c, out, why);
		break;
	case VBFS_EXPORT_BLOCKS:
		err = export_blocks(idx, meta, &c, out, r, why);
		break;
	default:
		vbfs_whyf(why, "unknown export format");
		err = VBFS_ERR_USAGE;
	}
out:
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].path);
	free(c.v);
	return err;
}
