/*
 * heal.c - the --replica/--parity options of vbfsctl (see heal.h).
 */
#include <errno.h>
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

char *tool_heal_mount_opts(const struct tool_heal *t, const char *cmd)
{
	size_t len = 1;
	for (size_t i = 0; i < t->nreplicas; i++)
		len += strlen(t->replicas[i]) + 1;
	len += t->parity ? strlen(t->parity) : 0;
	char *out = xmalloc(len + sizeof ",replica=,parity=");
	out[0] = '\0';
	for (size_t i = 0; i < t->nreplicas; i++) {
		if (strpbrk(t->replicas[i], ":,"))
			tool_usage_error(cmd, "--replica %s: a path with ':' or ',' cannot be "
					 "passed to the mount", t->replicas[i]);
		strcat(out, i ? ":" : ",replica=");
		strcat(out, t->replicas[i]);
	}
	if (t->parity) {
		if (strchr(t->parity, ','))
			tool_usage_error(cmd, "--parity %s: a path with ',' cannot be passed "
					 "to the mount", t->parity);
		strcat(out, ",parity=");
		strcat(out, t->parity);
	}
	return out;
}

void tool_require_outside(const char *cmd, const char *what, const char *dir, const char *store)
{
	char *copy = xstrdup(dir), *slash = strrchr(copy, '/');
	const char *parent = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
	char *rs = realpath(store, NULL), *rp = realpath(parent, NULL);
	if (!rp)
		tool_die("%s: %s %s: %s", cmd, what, dir, strerror(errno));
	size_t n = rs ? strlen(rs) : 0;
	if (!rs || (!strncmp(rp, rs, n) && (rp[n] == '/' || rp[n] == '\0')))
		tool_die("%s: %s %s: must not be inside the store", cmd, what, dir);
	free(rs);
	free(rp);
	free(copy);
}
