/*
 * event.c - the event record (a finding about the store) and its JSON form.
 * The mount, the scrub and the drills all describe damage with this one
 * record, so a log line means the same wherever it came from.
 */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "vbfs.h"

static const char *const kind_names[VBFS_EV_COUNT] = {
	[VBFS_EV_CORRUPT] = "corrupt",
	[VBFS_EV_MISSING] = "missing",
	[VBFS_EV_UNREADABLE] = "unreadable",
	[VBFS_EV_CHANGED] = "changed",
	[VBFS_EV_UNINDEXED] = "unindexed",
	[VBFS_EV_TRANSIENT] = "transient",
	[VBFS_EV_INDEX] = "index",
	[VBFS_EV_UNLISTED] = "unlisted",
	[VBFS_EV_UNCHECKABLE] = "uncheckable",
	[VBFS_EV_HEALED] = "healed",
};

const char *vbfs_event_kind_name(enum vbfs_event_kind k)
{
	return k < VBFS_EV_COUNT ? kind_names[k] : "unknown";
}

int vbfs_event_kind_from_name(const char *name)
{
	for (int k = 0; k < VBFS_EV_COUNT; k++)
		if (!strcmp(kind_names[k], name))
			return k;
	return -1;
}

/* unindexed and transient are informational: the bytes served were good.
 * healed answers a damage event that is itself logged (and counted). */
bool vbfs_event_is_damage(enum vbfs_event_kind k)
{
	return k != VBFS_EV_UNINDEXED && k != VBFS_EV_TRANSIENT &&
	       k != VBFS_EV_UNLISTED && k != VBFS_EV_UNCHECKABLE && k != VBFS_EV_HEALED;
}

static void add_digest(cJSON *o, const char *key, const uint8_t d[VBFS_DIGEST_LEN])
{
	char hex[VBFS_HEX_LEN];
	vbfs_hex(d, VBFS_DIGEST_LEN, hex);
	cJSON_AddStringToObject(o, key, hex);
}

cJSON *vbfs_event_object(const struct vbfs_event *ev)
{
	char when[32], *path;
	bool clean;
	cJSON *o = cJSON_CreateObject();
	if (!o) return NULL;
	vbfs_rfc3339(ev->time ? ev->time : vbfs_now(), when);
	cJSON_AddStringToObject(o, "time", when);
	cJSON_AddStringToObject(o, "event", vbfs_event_kind_name(ev->kind));
	path = vbfs_utf8_sanitize(ev->path ? ev->path : "", ev->path ? ev->path_len : 0, &clean);
	if (!path) goto out;
	/* cJSON escapes control characters (\n, \u001b ...) itself. */
	cJSON_AddStringToObject(o, "path", path);
	free(path);
	if (!clean) {
		char *hex = malloc(2 * ev->path_len + 1);
		if (!hex) goto out;
		vbfs_hex((const uint8_t *)ev->path, ev->path_len, hex);
		cJSON_AddStringToObject(o, "path_hex", hex);
		free(hex);
	}
	if (ev->block >= 0) {
		cJSON_AddNumberToObject(o, "block", (double)ev->block);
		cJSON_AddNumberToObject(o, "offset", (double)ev->offset);
		cJSON_AddNumberToObject(o, "length", (double)ev->length);
	}
	if (ev->has_expected) add_digest(o, "expected", ev->expected);
	if (ev->has_actual) add_digest(o, "actual", ev->actual);
	if (ev->source) {
		char *src = vbfs_utf8_sanitize(ev->source, strlen(ev->source), &clean);
		if (!src) goto out;
		cJSON_AddStringToObject(o, "source", src);
		free(src);
	}
	if (ev->repair != VBFS_REPAIR_UNJUDGED)
		cJSON_AddBoolToObject(o, "repairable", ev->repair == VBFS_REPAIR_YES);
	if (ev->detail) {
		char *d = vbfs_utf8_sanitize(ev->detail, strlen(ev->detail), &clean);
		if (!d) goto out;
		cJSON_AddStringToObject(o, "detail", d);
		free(d);
	}
	return o;
out:
	cJSON_Delete(o);
	return NULL;
}

char *vbfs_event_json(const struct vbfs_event *ev)
{
	cJSON *o = vbfs_event_object(ev);
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

void vbfs_event_from_check(struct vbfs_event *ev, const struct vbfs_entry *e,
			   uint64_t block, uint32_t block_size,
			   const uint8_t expected[VBFS_DIGEST_LEN],
			   const struct vbfs_block_check *chk)
{
	memset(ev, 0, sizeof *ev);
	ev->path = e->path;
	ev->path_len = e->path_len;
	ev->block = (int64_t)block;
	ev->offset = block * (uint64_t)block_size;
	ev->length = vbfs_block_len(e->size, block_size, block);
	ev->has_expected = true;
	memcpy(ev->expected, expected, VBFS_DIGEST_LEN);
	switch (chk->verdict) {
	case VBFS_BLOCK_OK:          /* not an event; callers do not ask */
	case VBFS_BLOCK_TRANSIENT:
		ev->kind = VBFS_EV_TRANSIENT;
		ev->has_actual = true;
		memcpy(ev->actual, chk->actual, VBFS_DIGEST_LEN);
		ev->detail = "mismatch on first read, verified on re-read";
		break;
	case VBFS_BLOCK_CORRUPT:
		ev->kind = VBFS_EV_CORRUPT;
		ev->has_actual = true;
		memcpy(ev->actual, chk->actual, VBFS_DIGEST_LEN);
		break;
	case VBFS_BLOCK_MISSING:
		ev->kind = VBFS_EV_MISSING;
		ev->detail = chk->got ? "store file ends inside this block"
				      : "store file ends before this block";
		break;
	case VBFS_BLOCK_UNREADABLE:
		ev->kind = VBFS_EV_UNREADABLE;
		ev->detail = strerror(chk->err);
		break;
	}
	/* Sparse files: a change of layout is damage even when the bytes verify. */
	bool served = chk->verdict <= VBFS_BLOCK_TRANSIENT;
	if (chk->layout == VBFS_LAYOUT_HOLE_TO_DATA) {
		ev->kind = served ? VBFS_EV_CHANGED : ev->kind;
		ev->detail = served ? "a hole when indexed now holds data (the bytes still verify)"
				    : "a hole when indexed now holds other data";
	} else if (chk->layout == VBFS_LAYOUT_DATA_TO_HOLE) {
		ev->kind = served ? VBFS_EV_CHANGED : ev->kind;
		ev->detail = served ? "data when indexed is now a hole (it reads as the same zeros)"
				    : "data when indexed is now a hole";
	}
}

void vbfs_event_healed(struct vbfs_event *ev, const struct vbfs_entry *e, uint64_t block,
		       uint32_t block_size, const uint8_t expected[VBFS_DIGEST_LEN],
		       const char *source)
{
	struct vbfs_block_check ok = { .verdict = VBFS_BLOCK_OK };
	vbfs_event_from_check(ev, e, block, block_size, expected, &ok);
	ev->kind = VBFS_EV_HEALED;
	ev->has_actual = false;
	ev->detail = NULL;
	ev->source = source;
}
