/*
 * heal.c - the --replica/--parity options of vbfsctl (see heal.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "heal.h"

void tool_heal_add_replica(struct tool_heal *t, const char *cmd, const char *dir)
{
	if (t->nreplicas == TOOL_REPLICAS_MAX)
		tool_usage_error(cmd, "--replica: at most %d", TOOL_REPLICAS_MAX);
	if (!*dir)
		tool_usage_error(cmd, "--replica: needs a directory");
	t->replicas[t->nreplicas++] = dir;
}

void tool_heal_set_parity(struct tool_heal *t, const char *cmd, const char *dir)
{
	if (t->parity)
		tool_usage_error(cmd, "--parity: given twice");
	if (!*dir)
		tool_usage_error(cmd, "--parity: needs a directory");
	t->parity = dir;
}

bool tool_heal_given(const struct tool_heal *t)
{
	return t->nreplicas || t->parity;
}

vbfs_heal *tool_heal_open(struct tool_heal *t, const char *cmd, vbfs_index *idx,
			  const char *store)
{
	struct vbfs_heal_opts o = { .replicas = t->replicas, .nreplicas = t->nreplicas,
				    .parity = t->parity, .store = store };
	char why[VBFS_WHY_LEN];
	if (!tool_heal_given(t))
		return NULL;
	if (vbfs_heal_open(idx, &o, &t->h, why))
		tool_die("%s: %s", cmd, why);
	return t->h;
}

void tool_heal_close(struct tool_heal *t)
{
	vbfs_heal_close(t->h);
	t->h = NULL;
}

/* Append `path` to `out` escaped for the mount's -o string.  libfuse
 * undoes "\," and "\\" first; in the replica list vbfs then undoes "\:"
 * and "\\" (fs/main.c).  So a replica's ':' is "\\:", its backslash
 * "\\\\", a comma "\,".  Returns the new end of `out`. */
static char *opt_escape(char *out, const char *path, bool in_list)
{
	for (; *path; path++) {
		if (in_list && (*path == ':' || *path == '\\'))
			out = stpcpy(out, "\\\\");   /* vbfs's escape, escaped for libfuse */
		if (*path == ',' || *path == '\\')
			*out++ = '\\';               /* libfuse's */
		*out++ = *path;
	}
	*out = '\0';
	return out;
}

char *tool_heal_mount_opts(const struct tool_heal *t, const char *cmd)
{
	(void)cmd;
	size_t len = sizeof ",replica=,parity=";
	for (size_t i = 0; i < t->nreplicas; i++)
		len += 4 * strlen(t->replicas[i]) + 1;   /* at most 4 bytes a character */
	len += t->parity ? 2 * strlen(t->parity) : 0;
	char *out = xmalloc(len), *end = out;
	*end = '\0';
	for (size_t i = 0; i < t->nreplicas; i++) {
		end = stpcpy(end, i ? ":" : ",replica=");
		end = opt_escape(end, t->replicas[i], true);
	}
	if (t->parity) {
		end = stpcpy(end, ",parity=");
		end = opt_escape(end, t->parity, false);
	}
	return out;
}

void tool_require_outside(const char *cmd, const char *what, const char *dir, const char *store)
{
	char *copy = xstrdup(dir), *slash = strrchr(copy, '/');
	const char *parent = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
	/* dir itself when it exists (it may be the store, or a symlink into
	 * it); else the parent it will be made in */
	char *rs = realpath(store, NULL), *rp = realpath(dir, NULL);
	if (!rp)
		rp = realpath(parent, NULL);
	if (!rp)
		tool_die("%s: %s %s: %s", cmd, what, dir, strerror(errno));
	size_t n = rs ? strlen(rs) : 0;
	if (!rs || (!strncmp(rp, rs, n) && (rp[n] == '/' || rp[n] == '\0')))
		tool_die("%s: %s %s: must not be inside the store", cmd, what, dir);
	free(rs);
	free(rp);
	free(copy);
}

char *tool_heal_privmount_opts(const struct tool_heal *t, const char *cmd, const char *user_opts)
{
	char *mine = tool_heal_mount_opts(t, cmd);
	const char *user = user_opts ? user_opts : "";
	if (!*mine && !*user) {
		free(mine);
		return NULL;
	}
	char *out = xmalloc(strlen(user) + strlen(mine) + 1);
	strcpy(out, user);
	strcat(out, *user ? mine : mine + (*mine == ','));
	free(mine);
	return out;
}

void tool_heal_read_log(const char *log, struct tool_heal_report *h)
{
	FILE *f = fopen(log, "re");
	char *line = NULL;
	size_t cap = 0;
	memset(h, 0, sizeof *h);
	if (!f)
		return;
	while (getline(&line, &cap, f) >= 0) {
		cJSON *o = cJSON_Parse(line);
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
		const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source");
		const cJSON *rep = cJSON_GetObjectItemCaseSensitive(o, "repairable");
		if (cJSON_IsFalse(rep))
			h->unrepairable++;
		if (cJSON_IsString(ev) && !strcmp(ev->valuestring, "healed") && cJSON_IsString(src)) {
			size_t i;
			h->healed++;
			for (i = 0; i < h->n && strcmp(h->by[i].source, src->valuestring); i++)
				;
			if (i == h->n && h->n < sizeof h->by / sizeof h->by[0])
				snprintf(h->by[h->n++].source, sizeof h->by[0].source, "%s",
					 src->valuestring);
			if (i < h->n)
				h->by[i].blocks++;
		}
		cJSON_Delete(o);
	}
	free(line);
	fclose(f);
}

void tool_heal_say(const char *prefix, const struct tool_heal_report *h)
{
	if (!h->healed)
		return;
	fprintf(stderr, "%srestored, %llu block%s healed", prefix, (unsigned long long)h->healed,
		h->healed == 1 ? "" : "s");
	for (size_t i = 0; i < h->n; i++)
		fprintf(stderr, "%s %llu from %s", i ? "," : ":", (unsigned long long)h->by[i].blocks,
			h->by[i].source);
	fprintf(stderr, "%s\n", h->unrepairable ? "; some damage could not be healed" : "");
}

void tool_heal_metrics(struct metrics *m, const char *store, const struct tool_heal_report *h)
{
	const char *const st[] = { "store", store, NULL };
	metrics_family(m, "vbfs_blocks_healed_total", "counter",
		       "Damaged blocks the drill's mount served from a replica or parity, by source.");
	if (!h->n) {
		const char *const l[] = { "store", store, "source", "none", NULL };
		metrics_sample(m, "vbfs_blocks_healed_total", l, 0);
	}
	for (size_t i = 0; i < h->n; i++) {
		const char *const l[] = { "store", store, "source", h->by[i].source, NULL };
		metrics_sample(m, "vbfs_blocks_healed_total", l, (double)h->by[i].blocks);
	}
	metrics_family(m, "vbfs_blocks_unrepairable_total", "counter",
		       "Damaged blocks no replica or parity could heal.");
	metrics_sample(m, "vbfs_blocks_unrepairable_total", st, (double)h->unrepairable);
}

void tool_heal_json(cJSON *o, const struct tool_heal_report *h)
{
	cJSON *by = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "healed", (double)h->healed);
	for (size_t i = 0; i < h->n; i++)
		cJSON_AddNumberToObject(by, h->by[i].source, (double)h->by[i].blocks);
	cJSON_AddItemToObject(o, "healed_by_source", by);
	cJSON_AddNumberToObject(o, "unrepairable", (double)h->unrepairable);
}
