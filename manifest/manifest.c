/*
 * manifest.c - one job: backup-time manifests, the model and its three
 * loaders (for `vbfsctl build --against`).  The format is told from the
 * content: a JSON document is the seed article's manifest or PostgreSQL's
 * backup_manifest, anything else is read as `sha256sum` output.  Each
 * loader checks the manifest's own checksum before trusting a line of it.
 * JSON goes through json.c, which reads it as Python and PostgreSQL wrote it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "formats.h"
#include "json.h"

#define MANIFEST_MAX_BYTES ((size_t)2 << 30)    /* refuse larger: not a manifest */

static vbfs_err read_whole(const char *path, char **out, size_t *outlen, char *why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		vbfs_whyf(why, "%s", strerror(errno));
		return VBFS_ERR_IO;
	}
	struct json_buf b = { 0 };
	char tmp[65536];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof tmp);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vbfs_whyf(why, "%s", strerror(errno));
			close(fd);
			free(b.p);
			return VBFS_ERR_IO;
		}
		if (n == 0)
			break;
		json_buf_put(&b, tmp, (size_t)n);
		if (b.oom || b.len > MANIFEST_MAX_BYTES) {
			vbfs_whyf(why, b.oom ? "out of memory" : "larger than 2 GiB: not a manifest");
			close(fd);
			free(b.p);
			return b.oom ? VBFS_ERR_NOMEM : VBFS_ERR_FORMAT;
		}
	}
	close(fd);
	*out = b.p ? b.p : calloc(1, 1);
	*outlen = b.len;
	return *out ? VBFS_OK : VBFS_ERR_NOMEM;
}

/* ---- manifest entries ---------------------------------------------------------- */

struct mbuild {
	struct vbfs_manifest *m;
	size_t cap;
};

/*
 * Turn a manifest's path (raw bytes) into the store-relative form the index
 * uses: no leading "./", no empty or "." components (Python's Path and
 * `find .` differ only in those).  Absolute paths cannot be placed in the
 * store and are refused.
 */
static char *norm_path(const char *p, size_t n, const char **err)
{
	if (n == 0) {
		*err = "empty path";
		return NULL;
	}
	if (p[0] == '/') {
		*err = "absolute path (write the manifest relative to the backup's root)";
		return NULL;
	}
	if (memchr(p, '\0', n)) {
		*err = "NUL byte in path";
		return NULL;
	}
	char *out = malloc(n + 1);
	size_t o = 0;
	if (!out) {
		*err = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && p[j] != '/')
			j++;
		size_t cl = j - i;
		if (cl && !(cl == 1 && p[i] == '.')) {
			if (o)
				out[o++] = '/';
			memcpy(out + o, p + i, cl);
			o += cl;
		}
		i = j + 1;
	}
	if (!o) {
		free(out);
		*err = "path names no file";
		return NULL;
	}
	out[o] = '\0';
	return out;
}


static vbfs_err add_file(struct mbuild *mb, const char *path, size_t path_len,
			 int64_t size, const char *algorithm, const char *digest_hex,
			 size_t digest_len, const char *where, char *why)
{
	struct vbfs_manifest *m = mb->m;
	const char *err = NULL;
	char *np = norm_path(path, path_len, &err);
	if (!np) {
		vbfs_whyf(why, "%s: %s", where, err);
		return VBFS_ERR_FORMAT;
	}
	{
		struct vbfs_manifest_file *f = vbfs_grow(m->files, &mb->cap, m->nfiles,
							 sizeof *f, 64);
		if (!f) {
			free(np);
			vbfs_whyf(why, "out of memory");
			return VBFS_ERR_NOMEM;
		}
		m->files = f;
	}
	struct vbfs_manifest_file *f = &m->files[m->nfiles];
	memset(f, 0, sizeof *f);
	f->path = np;
	f->size = size;
	snprintf(f->algorithm, sizeof f->algorithm, "%s", algorithm);
	bool sha = !strcasecmp(algorithm, "sha256") || !strcasecmp(algorithm, "sha-256");
	if (sha) {
		if (vbfs_unhexn(digest_hex, digest_len, f->sha256, VBFS_DIGEST_LEN)) {
			vbfs_whyf(why, "%s: checksum is not a SHA-256 hex digest", where);
			free(np);
			return VBFS_ERR_FORMAT;
		}
		f->checkable = true;
	}
	m->nfiles++;
	return VBFS_OK;
}

static int file_cmp(const void *a, const void *b)
{
	const struct vbfs_manifest_file *x = a, *y = b;
	return strcmp(x->path, y->path);  /* paths hold no NUL: bytewise */
}

/* Sort for vbfs_manifest_find; a path listed twice must agree with itself. */
static vbfs_err finish_files(struct vbfs_manifest *m, char *why)
{
	if (m->nfiles)
		qsort(m->files, m->nfiles, sizeof *m->files, file_cmp);
	/* check every pair first, so an error leaves m whole for the caller */
	for (size_t i = 1; i < m->nfiles; i++) {
		const struct vbfs_manifest_file *g = &m->files[i - 1], *f = &m->files[i];
		if (strcmp(g->path, f->path))
			continue;
		if (g->checkable != f->checkable || g->size != f->size ||
		    memcmp(g->sha256, f->sha256, sizeof g->sha256)) {
			vbfs_whyf(why, "'%s' is listed twice with different checksums", f->path);
			return VBFS_ERR_FORMAT;
		}
	}
	size_t o = 0;
	for (size_t i = 0; i < m->nfiles; i++) {
		if (o && !strcmp(m->files[o - 1].path, m->files[i].path)) {
			free(m->files[i].path);
			continue;
		}
		m->files[o++] = m->files[i];
	}
	m->nfiles = o;
	return VBFS_OK;
}

/* A listed file size: a non-negative JSON integer, else -1 (none given). */
static int64_t listed_size(const struct json_value *v)
{
	if (!v || v->t != JSON_NUM || strpbrk(v->s, ".eEIN-"))
		return -1;
	errno = 0;
	long long n = strtoll(v->s, NULL, 10);
	return errno ? -1 : n;
}

/* ---- format 1: the seed article's BackupChecksumManager JSON --------------------- */

static vbfs_err load_seed(struct mbuild *mb, const struct json_value *top, char *why)
{
	const struct json_value *files = json_get(top, "files");
	const struct json_value *alg = json_get(top, "algorithm");
	const struct json_value *mc = json_get(top, "manifest_checksum");
	if (!files || files->t != JSON_ARR) {
		vbfs_whyf(why, "seed manifest: \"files\" is not a list");
		return VBFS_ERR_FORMAT;
	}
	if (alg && alg->t != JSON_STR) {
		vbfs_whyf(why, "seed manifest: \"algorithm\" is not a string");
		return VBFS_ERR_FORMAT;
	}
	if (!mc || mc->t != JSON_STR) {
		vbfs_whyf(why, "seed manifest: no manifest_checksum, so it cannot be trusted");
		return VBFS_ERR_FORMAT;
	}
	/* manifest_checksum = vbfs_sha256(json.dumps(files, sort_keys=True).encode()) */
	struct json_buf b = { 0 };
	if (!json_dumps_sorted(&b, files) || b.oom) {
		free(b.p);
		vbfs_whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN];
	vbfs_sha256(b.p ? b.p : "", b.len, got);
	free(b.p);
	char gothex[VBFS_HEX_LEN];
	vbfs_hex(got, sizeof got, gothex);
	if (vbfs_unhexn(mc->s, mc->n, want, sizeof want) || memcmp(want, got, sizeof got)) {
		vbfs_whyf(why, "manifest_checksum does not match its files list (recorded %.64s, "
		     "computed %s): the manifest was altered or damaged", mc->s, gothex);
		return VBFS_ERR_FORMAT;
	}
	const char *algorithm = alg ? alg->s : "sha256";
	for (size_t i = 0; i < files->len; i++) {
		const struct json_value *f = files->items[i];
		const struct json_value *p = json_get(f, "path"), *c = json_get(f, "checksum"), *s = json_get(f, "size");
		char where[64];
		snprintf(where, sizeof where, "seed manifest files[%zu]", i);
		if (!p || p->t != JSON_STR || !c || c->t != JSON_STR) {
			vbfs_whyf(why, "%s: needs a string \"path\" and \"checksum\"", where);
			return VBFS_ERR_FORMAT;
		}
		int64_t size = listed_size(s);
		char *fs = malloc(p->n + 1);
		size_t fslen;
		if (!fs) {
			vbfs_whyf(why, "out of memory");
			return VBFS_ERR_NOMEM;
		}
		if (!json_wtf8_to_fs(p->s, p->n, fs, &fslen)) {
			free(fs);
			vbfs_whyf(why, "%s: path holds a character no file name can", where);
			return VBFS_ERR_FORMAT;
		}
		vbfs_err e = add_file(mb, fs, fslen, size, algorithm, c->s, c->n, where, why);
		free(fs);
		if (e)
			return e;
	}
	return VBFS_OK;
}

/* ---- format 3: PostgreSQL backup_manifest ------------------------------------------ */

/*
 * pg_verifybackup's rule: the file ends in a newline, has at least two
 * lines, and the checksum covers everything up to and including the
 * newline before the last line (the "Manifest-Checksum" line).
 */
static vbfs_err pg_check_checksum(const char *text, size_t len, const struct json_value *top, char *why)
{
	const struct json_value *mc = json_get(top, "Manifest-Checksum");
	if (!mc || mc->t != JSON_STR) {
		vbfs_whyf(why, "backup_manifest has no Manifest-Checksum");
		return VBFS_ERR_FORMAT;
	}
	if (len == 0 || text[len - 1] != '\n') {
		vbfs_whyf(why, "backup_manifest: last line not newline-terminated");
		return VBFS_ERR_FORMAT;
	}
	const char *nl = NULL;
	for (size_t i = len - 1; i-- > 0;)
		if (text[i] == '\n') {
			nl = text + i;
			break;
		}
	if (!nl) {
		vbfs_whyf(why, "backup_manifest: expected at least 2 lines");
		return VBFS_ERR_FORMAT;
	}
	uint8_t want[VBFS_DIGEST_LEN], got[VBFS_DIGEST_LEN];
	char gothex[VBFS_HEX_LEN];
	vbfs_sha256(text, (size_t)(nl + 1 - text), got);
	vbfs_hex(got, sizeof got, gothex);
	if (vbfs_unhexn(mc->s, mc->n, want, sizeof want) || memcmp(want, got, sizeof got)) {
		vbfs_whyf(why, "backup_manifest: Manifest-Checksum does not match (recorded %.64s, "
		     "computed %s): the manifest was altered or damaged", mc->s, gothex);
		return VBFS_ERR_FORMAT;
	}
	return VBFS_OK;
}

static vbfs_err load_pg(struct mbuild *mb, const char *text, size_t len,
			const struct json_value *top, char *why)
{
	const struct json_value *ver = json_get(top, "PostgreSQL-Backup-Manifest-Version");
	if (!ver || ver->t != JSON_NUM || (strcmp(ver->s, "1") && strcmp(ver->s, "2"))) {
		vbfs_whyf(why, "backup_manifest: unsupported PostgreSQL-Backup-Manifest-Version %s",
		     ver && ver->t == JSON_NUM ? ver->s : "(not a number)");
		return VBFS_ERR_FORMAT;
	}
	vbfs_err e = pg_check_checksum(text, len, top, why);
	if (e)
		return e;
	const struct json_value *files = json_get(top, "Files");
	if (!files || files->t != JSON_ARR) {
		vbfs_whyf(why, "backup_manifest: \"Files\" is not a list");
		return VBFS_ERR_FORMAT;
	}
	for (size_t i = 0; i < files->len; i++) {
		const struct json_value *f = files->items[i];
		const struct json_value *p = json_get(f, "Path"), *ep = json_get(f, "Encoded-Path");
		const struct json_value *sz = json_get(f, "Size"), *alg = json_get(f, "Checksum-Algorithm");
		const struct json_value *ck = json_get(f, "Checksum");
		char where[64];
		snprintf(where, sizeof where, "backup_manifest Files[%zu]", i);
		char *path = NULL;
		size_t plen = 0;
		if (p && p->t == JSON_STR) {
			path = malloc(p->n + 1);
			if (path && !json_wtf8_to_fs(p->s, p->n, path, &plen)) {
				free(path);
				vbfs_whyf(why, "%s: bad Path", where);
				return VBFS_ERR_FORMAT;
			}
		} else if (ep && ep->t == JSON_STR) {
			plen = ep->n / 2;
			path = malloc(plen + 1);
			if (path && vbfs_unhexn(ep->s, ep->n, (uint8_t *)path, plen)) {
				free(path);
				vbfs_whyf(why, "%s: Encoded-Path is not hex", where);
				return VBFS_ERR_FORMAT;
			}
		} else {
			vbfs_whyf(why, "%s: needs \"Path\" or \"Encoded-Path\"", where);
			return VBFS_ERR_FORMAT;
		}
		if (!path) {
			vbfs_whyf(why, "out of memory");
			return VBFS_ERR_NOMEM;
		}
		int64_t size = listed_size(sz);
		const char *algorithm = alg && alg->t == JSON_STR ? alg->s : "NONE";
		const char *hex = ck && ck->t == JSON_STR ? ck->s : "";
		size_t hexlen = ck && ck->t == JSON_STR ? ck->n : 0;
		e = add_file(mb, path, plen, size, algorithm, hex, hexlen, where, why);
		free(path);
		if (e)
			return e;
	}
	return VBFS_OK;
}

/* ---- format 2: sha256sum output ----------------------------------------------------- */

static const char *algo_for_hexlen(size_t n)
{
	switch (n) {
	case 32: return "MD5";
	case 40: return "SHA1";
	case 56: return "SHA224";
	case 64: return "SHA256";
	case 96: return "SHA384";
	case 128: return "SHA512";
	}
	return NULL;
}

/* coreutils escapes names holding \, newline or CR and marks the line
 * with a leading backslash. */
static bool unescape_name(const char *s, size_t n, char *out, size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i == n)
			return false;
		switch (s[i]) {
		case '\\': out[o++] = '\\'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		default: return false;
		}
	}
	*outlen = o;
	return true;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (vbfs_hexval((unsigned char)s[i]) < 0)
			return false;
	return n > 0;
}

static vbfs_err sum_line(struct mbuild *mb, const char *line, size_t n, size_t lineno, char *why)
{
	char where[64];
	snprintf(where, sizeof where, "line %zu", lineno);
	bool escaped = n && line[0] == '\\';
	if (escaped) {
		line++;
		n--;
	}
	const char *name, *hex, *algo;
	size_t name_len, hex_len;
	char tag[24];
	size_t h = 0;
	while (h < n && vbfs_hexval((unsigned char)line[h]) >= 0)
		h++;
	if (h < n && line[h] == ' ' && h + 1 < n && (line[h + 1] == ' ' || line[h + 1] == '*')) {
		/* GNU: HASH  name / HASH *name */
		hex = line;
		hex_len = h;
		algo = algo_for_hexlen(h);
		name = line + h + 2;
		name_len = n - h - 2;
	} else {
		/* BSD tag: ALGO (name) = HASH */
		const char *sp = memchr(line, ' ', n);
		const char *eq = NULL;
		for (size_t i = n; i >= 4; i--)
			if (!memcmp(line + i - 4, ") = ", 4)) {
				eq = line + i - 4;
				break;
			}
		if (!sp || sp + 1 >= line + n || sp[1] != '(' || !eq || eq < sp + 2) {
			vbfs_whyf(why, "%s is not 'HASH  PATH' (sha256sum output), and the file "
			     "is neither a seed JSON manifest nor a PostgreSQL backup_manifest",
			     where);
			return VBFS_ERR_FORMAT;
		}
		snprintf(tag, sizeof tag, "%.*s", (int)(sp - line), line);
		algo = tag;
		name = sp + 2;
		name_len = (size_t)(eq - name);
		hex = eq + 4;
		hex_len = (size_t)(line + n - hex);
	}
	if (!algo || !all_hex(hex, hex_len)) {
		vbfs_whyf(why, "%s: '%.*s' is not a hex digest of a known length", where,
		     (int)(hex_len > 140 ? 140 : hex_len), hex);
		return VBFS_ERR_FORMAT;
	}
	char *nm = malloc(name_len + 1);
	size_t nl = name_len;
	if (!nm) {
		vbfs_whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	if (escaped) {
		if (!unescape_name(name, name_len, nm, &nl)) {
			free(nm);
			vbfs_whyf(why, "%s: bad backslash escape in the file name", where);
			return VBFS_ERR_FORMAT;
		}
	} else {
		memcpy(nm, name, name_len);
	}
	vbfs_err e = add_file(mb, nm, nl, -1, algo, hex, hex_len, where, why);
	free(nm);
	return e;
}

static vbfs_err load_sums(struct mbuild *mb, const char *text, size_t len, char *why)
{
	size_t lineno = 0;
	for (size_t i = 0; i < len;) {
		const char *nlp = memchr(text + i, '\n', len - i);
		size_t end = nlp ? (size_t)(nlp - text) : len;
		size_t n = end - i;
		lineno++;
		if (n && text[i + n - 1] == '\r')
			n--;
		if (n && text[i] != '#') {
			vbfs_err e = sum_line(mb, text + i, n, lineno, why);
			if (e)
				return e;
		}
		i = end + 1;
	}
	if (mb->m->nfiles == 0) {
		vbfs_whyf(why, "no checksum lines: not a manifest");
		return VBFS_ERR_FORMAT;
	}
	return VBFS_OK;
}

/* ---- public: load, find, free --------------------------------------------------------- */

vbfs_err vbfs_manifest_parse(const char *text, size_t len, struct vbfs_manifest **out,
			     char why[VBFS_WHY_LEN])
{
	struct vbfs_manifest *m = calloc(1, sizeof *m);
	struct mbuild mb = { .m = m };
	struct json_arena a = { 0 };
	vbfs_err e;
	if (!m) {
		vbfs_whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	size_t i = 0;
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		i = 3;
	while (i < len && isspace((unsigned char)text[i]))
		i++;
	if (i < len && text[i] == '{') {
		struct json_value *top = json_parse(text, len, &a, why);
		if (!top) {
			e = VBFS_ERR_FORMAT;
			goto out;
		}
		if (json_get(top, "PostgreSQL-Backup-Manifest-Version")) {
			m->format = VBFS_MF_PGBACKUP;
			e = load_pg(&mb, text, len, top, why);
		} else if (json_get(top, "files")) {
			m->format = VBFS_MF_SEED;
			e = load_seed(&mb, top, why);
		} else {
			vbfs_whyf(why, "a JSON document that is neither a seed manifest (\"files\") "
			     "nor a PostgreSQL backup_manifest");
			e = VBFS_ERR_FORMAT;
		}
	} else {
		m->format = VBFS_MF_SHA256SUM;
		e = load_sums(&mb, text, len, why);
	}
	if (!e)
		e = finish_files(m, why);
out:
	json_arena_free(&a);
	if (e) {
		vbfs_manifest_free(m);
		return e;
	}
	*out = m;
	return VBFS_OK;
}

vbfs_err vbfs_manifest_load(const char *path, struct vbfs_manifest **out,
			    char why[VBFS_WHY_LEN])
{
	char *text, inner[VBFS_WHY_LEN] = "";
	size_t len;
	vbfs_err e = read_whole(path, &text, &len, inner);
	if (!e) {
		e = vbfs_manifest_parse(text, len, out, inner);
		free(text);
	}
	if (e)  /* name the manifest: the caller's message names the index */
		vbfs_whyf(why, "manifest %s: %s", path, inner);
	return e;
}

struct vbfs_manifest_file *vbfs_manifest_find(struct vbfs_manifest *m,
					      const char *path, size_t path_len)
{
	size_t lo = 0, hi = m ? m->nfiles : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *p = m->files[mid].path;
		size_t pl = strlen(p);
		int c = memcmp(p, path, pl < path_len ? pl : path_len);
		if (!c)
			c = pl < path_len ? -1 : pl > path_len;
		if (!c)
			return &m->files[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void vbfs_manifest_free(struct vbfs_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i].path);
	free(m->files);
	free(m);
}

const char *vbfs_manifest_format_name(enum vbfs_manifest_format f)
{
	switch (f) {
	case VBFS_MF_SEED: return "seed-json";
	case VBFS_MF_SHA256SUM: return "sha256sum";
	case VBFS_MF_PGBACKUP: return "pg-backup-manifest";
	}
	return "unknown";
}
