/*
 * report.c - verify reports: events from JSON, signing, loading, merging
 * shard reports; see report.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cjson_num.h"
#include "index_internal.h"
#include "report.h"
#include "shard.h"

static const char SIG_TAG[] = "vbfs-report-signature-v1";

static const cJSON *item(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

static bool get_digest(const cJSON *o, const char *key, uint8_t out[VBFS_DIGEST_LEN])
{
	const cJSON *x = item(o, key);
	return cJSON_IsString(x) && vbfs_unhex(x->valuestring, out, VBFS_DIGEST_LEN) == 0;
}

/* An event's numbers: `block` absent is a finding about the whole entry;
 * present, it and `offset` and `length` (when given) must be in range. */
static vbfs_err event_numbers(const cJSON *o, struct vbfs_event *ev, char why[VBFS_WHY_LEN])
{
	uint64_t block, offset = 0, length = 0;
	vbfs_err err = vbfs_json_whole(o, "block", VBFS_JSON_WHOLE_MAX, &block, why);
	ev->block = -1;
	if (err == VBFS_ERR_NOTFOUND)
		return VBFS_OK;
	if (err || ((err = vbfs_json_whole(o, "offset", VBFS_JSON_WHOLE_MAX, &offset, why)) &&
		    err != VBFS_ERR_NOTFOUND) ||
	    ((err = vbfs_json_whole(o, "length", VBFS_BLOCK_MAX, &length, why)) &&
	     err != VBFS_ERR_NOTFOUND))
		return VBFS_ERR_FORMAT;
	ev->block = (int64_t)block;
	ev->offset = offset;
	ev->length = length;
	return VBFS_OK;
}

vbfs_err vbfs_event_from_json(const cJSON *o, struct vbfs_event *ev, char **path,
			      char why[VBFS_WHY_LEN])
{
	const cJSON *kind = item(o, "event"), *p = item(o, "path"), *hex = item(o, "path_hex");
	const cJSON *t = item(o, "time"), *detail = item(o, "detail");
	memset(ev, 0, sizeof *ev);
	*path = NULL;
	vbfs_whyf(why, "not an event (\"event\" and \"path\" strings)");
	if (!cJSON_IsString(kind) || !cJSON_IsString(p))
		return VBFS_ERR_FORMAT;
	int k = vbfs_event_kind_from_name(kind->valuestring);
	vbfs_whyf(why, "\"event\": \"%.40s\": not an event kind", kind->valuestring);
	if (k < 0)
		return VBFS_ERR_FORMAT;
	ev->kind = (enum vbfs_event_kind)k;
	if (event_numbers(o, ev, why))
		return VBFS_ERR_FORMAT;
	/* The raw name: path_hex when the name was not UTF-8. */
	if (cJSON_IsString(hex)) {
		size_t n = strlen(hex->valuestring) / 2;
		if (!(*path = malloc(n + 1)))
			return VBFS_ERR_NOMEM;
		if (vbfs_unhex(hex->valuestring, (uint8_t *)*path, n)) {
			free(*path);
			*path = NULL;
			vbfs_whyf(why, "\"path_hex\": not hex");
			return VBFS_ERR_FORMAT;
		}
		(*path)[n] = '\0';
		ev->path_len = n;
	} else {
		if (!(*path = strdup(p->valuestring)))
			return VBFS_ERR_NOMEM;
		ev->path_len = strlen(*path);
	}
	ev->path = *path;
	ev->has_expected = get_digest(o, "expected", ev->expected);
	ev->has_actual = get_digest(o, "actual", ev->actual);
	ev->detail = cJSON_IsString(detail) ? detail->valuestring : NULL;
	struct tm tm = { 0 };
	if (cJSON_IsString(t) && strptime(t->valuestring, "%Y-%m-%dT%H:%M:%SZ", &tm))
		ev->time = (int64_t)timegm(&tm);
	return VBFS_OK;
}

/* The raw path bytes of an event object (path_hex decoded), malloc'd. */
static char *raw_path(const cJSON *o, size_t *len)
{
	struct vbfs_event ev;
	char *path;
	if (vbfs_event_from_json(o, &ev, &path, NULL) != VBFS_OK) {
		*len = 0;
		return NULL;
	}
	*len = ev.path_len;
	return path;
}

int vbfs_report_event_cmp(const cJSON *a, const cJSON *b)
{
	size_t la, lb;
	char *pa = raw_path(a, &la), *pb = raw_path(b, &lb);
	int c = memcmp(pa ? pa : "", pb ? pb : "", la < lb ? la : lb);
	if (!c && la != lb)
		c = la < lb ? -1 : 1;
	free(pa);
	free(pb);
	if (c)
		return c;
	const cJSON *ba = item(a, "block"), *bb = item(b, "block");
	double x = cJSON_IsNumber(ba) ? ba->valuedouble : -1, y = cJSON_IsNumber(bb) ? bb->valuedouble : -1;
	return (x > y) - (x < y);
}

/* SHA-256 of the compact print of doc without its signature, after one
 * parse (see report.h: the normalised bytes both sides hash). */
static vbfs_err canonical_digest(const cJSON *doc, uint8_t out[VBFS_DIGEST_LEN])
{
	cJSON *copy = cJSON_Duplicate(doc, true);
	char *once = NULL, *twice = NULL;
	cJSON *again = NULL;
	vbfs_err err = VBFS_ERR_NOMEM;
	if (!copy)
		goto out;
	cJSON_DeleteItemFromObjectCaseSensitive(copy, "signature");
	if (!(once = cJSON_PrintUnformatted(copy)) || !(again = cJSON_Parse(once)) ||
	    !(twice = cJSON_PrintUnformatted(again)))
		goto out;
	vbfs_sha256(twice, strlen(twice), out);
	err = VBFS_OK;
out:
	cJSON_Delete(copy);
	cJSON_Delete(again);
	free(once);
	free(twice);
	return err;
}

char *vbfs_report_text(cJSON *doc, const char *sign_key, char why[VBFS_WHY_LEN])
{
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "signature");
	if (sign_key) {
		uint8_t digest[VBFS_DIGEST_LEN], sig[64];
		char hex[2 * sizeof sig + 1];
		if (canonical_digest(doc, digest)) {
			vbfs_whyf(why, "out of memory");
			return NULL;
		}
		if (trust_sign_digest(sign_key, SIG_TAG, digest, sig, why))
			return NULL;
		vbfs_hex(sig, sizeof sig, hex);
		cJSON *s = cJSON_AddObjectToObject(doc, "signature");
		cJSON_AddStringToObject(s, "algorithm", "ed25519");
		cJSON_AddStringToObject(s, "value", hex);
	}
	char *text = cJSON_Print(doc);
	size_t n = text ? strlen(text) : 0;
	char *out = text ? realloc(text, n + 2) : NULL;
	if (!out) {
		free(text);
		vbfs_whyf(why, "out of memory");
		return NULL;
	}
	out[n] = '\n';
	out[n + 1] = '\0';
	return out;
}

vbfs_err vbfs_report_check_key(const char *sign_key, char why[VBFS_WHY_LEN])
{
	return idx_check_secret_key(sign_key, why);
}

/* Counts a report may carry: each, when present, a whole number. */
static const char *const optional_counts[] = {
	"damage_events", "healed", "damaged_blocks", "repairable", "unrecoverable", "merged",
	"pass", "runs", "run_blocks", "run_bytes", "rechecked",
};
static const char *const shard_counts[] = { "index_bytes", "begin", "end", "blocks", "bytes" };

/* A required (or, with !required, an optional) whole number of `o`. */
static bool whole(const cJSON *o, const char *key, uint64_t max, bool required,
		  const char *where, char what[VBFS_WHY_LEN])
{
	uint64_t v;
	char sub[VBFS_WHY_LEN];
	vbfs_err err = vbfs_json_whole(o, key, max, &v, sub);
	if (err == VBFS_ERR_NOTFOUND && !required)
		return true;
	if (err == VBFS_ERR_NOTFOUND)
		vbfs_whyf(what, "%sno \"%s\"", where, key);
	else if (err)
		vbfs_whyf(what, "%s%s", where, sub);
	return !err;
}

/* The shape every report has, and every number in range (a "block": -5
 * or "bytes": 1e300 was read as a huge unsigned number); false with
 * `what`, naming the member, for one line by the caller. */
static bool is_report(const cJSON *doc, char what[VBFS_WHY_LEN])
{
	const cJSON *fmt = item(doc, "format"), *sh = item(doc, "shard"), *root = item(doc, "root");
	uint8_t d[VBFS_DIGEST_LEN];
	uint64_t k, n;
	double seconds;
	char sub[VBFS_WHY_LEN];
	vbfs_whyf(what, "no \"format\": \"" VBFS_REPORT_FORMAT "\"");
	if (!cJSON_IsObject(doc) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, VBFS_REPORT_FORMAT))
		return false;
	/* A shard number: a whole number 0..VBFS_SHARDS_MAX (a fraction or
	 * 1e18 would pass for another shard once converted). */
	if (!whole(sh, "k", VBFS_SHARDS_MAX, true, "\"shard\": ", what) ||
	    !whole(sh, "n", VBFS_SHARDS_MAX, true, "\"shard\": ", what))
		return false;
	vbfs_json_whole(sh, "k", VBFS_SHARDS_MAX, &k, NULL);
	vbfs_json_whole(sh, "n", VBFS_SHARDS_MAX, &n, NULL);
	vbfs_whyf(what, "\"shard\": k %llu of n %llu: must be 0 <= k < n", (unsigned long long)k,
		  (unsigned long long)n);
	if (n < 1 || k >= n)
		return false;
	for (size_t i = 0; i < sizeof shard_counts / sizeof shard_counts[0]; i++)
		if (!whole(sh, shard_counts[i], VBFS_JSON_WHOLE_MAX, false, "\"shard\": ", what))
			return false;
	vbfs_whyf(what, "bad \"root\"");
	if (!cJSON_IsString(root) || vbfs_unhex(root->valuestring, d, sizeof d))
		return false;
	vbfs_whyf(what, "no \"ok\" and \"complete\" booleans");
	if (!cJSON_IsBool(item(doc, "ok")) || !cJSON_IsBool(item(doc, "complete")))
		return false;
	if (!whole(doc, "files", VBFS_JSON_WHOLE_MAX, true, "", what) ||
	    !whole(doc, "blocks", VBFS_JSON_WHOLE_MAX, true, "", what) ||
	    !whole(doc, "bytes", VBFS_JSON_WHOLE_MAX, true, "", what))
		return false;
	for (size_t i = 0; i < sizeof optional_counts / sizeof optional_counts[0]; i++)
		if (!whole(doc, optional_counts[i], VBFS_JSON_WHOLE_MAX, false, "", what))
			return false;
	vbfs_err err = vbfs_json_real(doc, "seconds", 1e12, &seconds, sub);
	if (err && err != VBFS_ERR_NOTFOUND) {
		vbfs_whyf(what, "%s", sub);
		return false;
	}
	vbfs_whyf(what, "no \"events\" array");
	if (!cJSON_IsArray(item(doc, "events")))
		return false;
	const cJSON *ev;
	size_t i = 0;
	cJSON_ArrayForEach(ev, item(doc, "events")) {
		struct vbfs_event e;
		char *p;
		err = vbfs_event_from_json(ev, &e, &p, sub);
		free(p);
		if (err) {
			vbfs_whyf(what, "events[%zu]: %s", i, sub);
			return false;
		}
		i++;
	}
	return true;
}

vbfs_err vbfs_report_load(const char *path, const char *verify_key, cJSON **doc,
			  bool *signed_, char why[VBFS_WHY_LEN])
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0, cap = 0;
	char what[VBFS_WHY_LEN];
	vbfs_err err = VBFS_ERR_FORMAT;
	*doc = NULL;
	*signed_ = false;
	if (!f) {
		vbfs_whyf(why, "%s: %s", path, strerror(errno));
		return VBFS_ERR_IO;
	}
	for (;;) {
		if (len + 65536 + 1 > cap) {
			char *nt = realloc(text, cap = 2 * cap + 65536 + 1);
			if (!nt) {
				fclose(f);
				free(text);
				vbfs_whyf(why, "%s: out of memory", path);
				return VBFS_ERR_NOMEM;
			}
			text = nt;
		}
		size_t got = fread(text + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	bool rerr = ferror(f);
	fclose(f);
	if (rerr) {
		free(text);
		vbfs_whyf(why, "%s: read error", path);
		return VBFS_ERR_IO;
	}
	text[len] = '\0';
	cJSON *o = strlen(text) == len ? cJSON_Parse(text) : NULL;
	free(text);
	if (!o) {
		vbfs_whyf(why, "%s: not a vbfs verify report (not JSON)", path);
		return VBFS_ERR_FORMAT;
	}
	if (!is_report(o, what)) {
		vbfs_whyf(why, "%s: not a vbfs verify report (%s)", path, what);
		goto out;
	}
	const cJSON *sig = item(o, "signature"), *val = item(sig, "value"), *alg = item(sig, "algorithm");
	uint8_t raw[64], digest[VBFS_DIGEST_LEN];
	if (sig && (!cJSON_IsString(alg) || strcmp(alg->valuestring, "ed25519") ||
		    !cJSON_IsString(val) || vbfs_unhex(val->valuestring, raw, sizeof raw))) {
		vbfs_whyf(why, "%s: malformed signature", path);
		err = VBFS_ERR_SIGNATURE;
		goto out;
	}
	*signed_ = sig != NULL;
	if (verify_key) {
		if (!sig) {
			vbfs_whyf(why, "%s: report is not signed (a key was given)", path);
			err = VBFS_ERR_SIGNATURE;
			goto out;
		}
		if ((err = canonical_digest(o, digest))) {
			vbfs_whyf(why, "%s: out of memory", path);
			goto out;
		}
		char sub[VBFS_WHY_LEN];
		if ((err = trust_verify_digest(verify_key, SIG_TAG, digest, raw, sub))) {
			vbfs_whyf(why, "%s: %s (forged or changed after signing?)", path, sub);
			goto out;
		}
	}
	*doc = o;
	return VBFS_OK;
out:
	cJSON_Delete(o);
	return err;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *x = item(o, key);
	return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

struct sortable {
	cJSON *ev;
	size_t order;           /* ties keep the shards' order */
};

static int by_event(const void *x, const void *y)
{
	const struct sortable *a = x, *b = y;
	int c = vbfs_report_event_cmp(a->ev, b->ev);
	return c ? c : (a->order > b->order) - (a->order < b->order);
}

vbfs_err vbfs_report_merge(cJSON *const *docs, const char *const *names, size_t n,
			   cJSON **out, char why[VBFS_WHY_LEN])
{
	*out = NULL;
	if (n == 0) {
		vbfs_whyf(why, "no reports to merge");
		return VBFS_ERR_USAGE;
	}
	const char *root0 = item(docs[0], "root")->valuestring;
	uint32_t nshards = (uint32_t)num(item(docs[0], "shard"), "n");
	size_t *seen = calloc(nshards, sizeof *seen);   /* index + 1 of the report */
	if (!seen) {
		vbfs_whyf(why, "out of memory");
		return VBFS_ERR_NOMEM;
	}
	vbfs_err err = VBFS_ERR_USAGE;
	size_t nev = 0;
	for (size_t i = 0; i < n; i++) {
		const cJSON *sh = item(docs[i], "shard");
		uint32_t k = (uint32_t)num(sh, "k"), ni = (uint32_t)num(sh, "n");
		if (cJSON_IsTrue(item(docs[i], "errors_only"))) {
			vbfs_whyf(why, "%s: an --errors-only report is not a shard", names[i]);
			goto out;
		}
		if (strcmp(item(docs[i], "root")->valuestring, root0)) {
			vbfs_whyf(why, "%s: shard %u/%u is of another index (root %.16s…, %s has %.16s…)",
				  names[i], k, ni, item(docs[i], "root")->valuestring, names[0], root0);
			goto out;
		}
		if (ni != nshards) {
			vbfs_whyf(why, "%s: shard %u/%u, but %s is one of %u shards",
				  names[i], k, ni, names[0], nshards);
			goto out;
		}
		if (seen[k]) {
			vbfs_whyf(why, "%s: shard %u/%u given twice (also %s)", names[i], k, ni,
				  names[seen[k] - 1]);
			goto out;
		}
		seen[k] = i + 1;
		if (!cJSON_IsTrue(item(docs[i], "complete"))) {
			vbfs_whyf(why, "%s: shard %u/%u did not complete (stopped by its time "
				  "budget); run it again with --resume until it does", names[i], k, ni);
			goto out;
		}
		nev += (size_t)cJSON_GetArraySize(item(docs[i], "events"));
	}
	for (uint32_t k = 0; k < nshards; k++)
		if (!seen[k]) {
			uint32_t missing = 0;
			for (uint32_t j = k; j < nshards; j++)
				missing += !seen[j];
			vbfs_whyf(why, "shard %u/%u is missing%s (%zu of %u shard reports given)",
				  k, nshards, missing > 1 ? " (and more)" : "", n, nshards);
			goto out;
		}

	struct sortable *all = calloc(nev ? nev : 1, sizeof *all);
	cJSON *doc = cJSON_CreateObject(), *events = cJSON_CreateArray();
	if (!all || !doc || !events) {
		free(all);
		cJSON_Delete(doc);
		cJSON_Delete(events);
		err = VBFS_ERR_NOMEM;
		vbfs_whyf(why, "out of memory");
		goto out;
	}
	double files = 0, blocks = 0, bytes = 0, seconds = 0, total = 0;
	uint64_t damage = 0;
	size_t m = 0;
	const cJSON *store = NULL;
	for (uint32_t k = 0; k < nshards; k++) {
		const cJSON *d = docs[seen[k] - 1], *ev;
		files += num(d, "files");
		blocks += num(d, "blocks");
		bytes += num(d, "bytes");
		total += num(d, "seconds");
		if (num(d, "seconds") > seconds)
			seconds = num(d, "seconds");
		if (!store && cJSON_IsString(item(d, "store")))
			store = item(d, "store");
		cJSON_ArrayForEach(ev, item(d, "events")) {
			all[m].ev = cJSON_Duplicate(ev, true);
			all[m].order = m;
			m++;
		}
	}
	if (m)
		qsort(all, m, sizeof *all, by_event);
	for (size_t i = 0; i < m; i++) {
		const cJSON *kind = item(all[i].ev, "event");
		int k = vbfs_event_kind_from_name(kind->valuestring);
		if (k >= 0 && vbfs_event_is_damage((enum vbfs_event_kind)k))
			damage++;
		cJSON_AddItemToArray(events, all[i].ev);
	}
	free(all);
	char when[32];
	vbfs_rfc3339(vbfs_now(), when);
	cJSON_AddStringToObject(doc, "format", VBFS_REPORT_FORMAT);
	cJSON_AddBoolToObject(doc, "ok", damage == 0);
	cJSON_AddNumberToObject(doc, "files", files);
	cJSON_AddNumberToObject(doc, "blocks", blocks);
	cJSON_AddNumberToObject(doc, "bytes", bytes);
	cJSON_AddNumberToObject(doc, "seconds", seconds);
	cJSON_AddNumberToObject(doc, "shard_seconds", total);
	cJSON_AddNumberToObject(doc, "damage_events", (double)damage);
	cJSON_AddBoolToObject(doc, "complete", true);
	cJSON *sh = cJSON_AddObjectToObject(doc, "shard");
	cJSON_AddNumberToObject(sh, "k", 0);
	cJSON_AddNumberToObject(sh, "n", 1);
	cJSON_AddNumberToObject(doc, "merged", nshards);
	cJSON_AddStringToObject(doc, "root", root0);
	if (store)
		cJSON_AddStringToObject(doc, "store", store->valuestring);
	cJSON_AddStringToObject(doc, "time", when);
	cJSON_AddItemToObject(doc, "events", events);
	*out = doc;
	err = VBFS_OK;
out:
	free(seen);
	return err;
}
