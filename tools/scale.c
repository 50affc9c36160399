/*
 * scale.c - shard from the batch engine, --errors-only targets, the block
 * trace; see scale.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "report.h"
#include "tool.h"
#include "scale.h"

/* An environment variable that must be a decimal number if set. */
static bool env_num(const char *name, uint32_t *out)
{
	const char *v = getenv(name);
	char *end;
	if (!v || !*v)
		return false;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (*end || errno || n > 0xffffffffUL || *v == '-')
		tool_usage_error("verify", "%s=%s: not a number", name, v);
	*out = (uint32_t)n;
	return true;
}

void scale_shard(const char *opt, struct vbfs_shard *s, char source[128])
{
	char why[VBFS_WHY_LEN];
	bool has_k = false, has_n = false, want = opt != NULL;
	uint32_t k = 0, n = 0, env_n = 0, id, min = 0;
	const char *n_from = "--shard", *k_from = NULL;

	s->k = s->n = 0;
	source[0] = '\0';
	if (opt && strcmp(opt, "auto")) {
		struct vbfs_shard p;
		if (vbfs_shard_parse(opt, &p, &has_k, why))
			tool_usage_error("verify", "--shard %s", why);
		k = p.k;
		n = p.n;
		has_n = true;
		if (has_k) {
			*s = p;
			snprintf(source, 128, "from the command line");
			return;
		}
	}
	if (env_num("VBFS_SHARDS", &env_n)) {
		want = true;
		if (has_n && env_n != n)
			tool_usage_error("verify", "--shard /%u but VBFS_SHARDS=%u", n, env_n);
		if (!has_n) {
			n = env_n;
			n_from = "VBFS_SHARDS";
			has_n = true;
		}
	}
	if (!want)
		return;         /* no sharding asked for: the whole index */
	if (env_num("JOB_COMPLETION_INDEX", &id)) {
		k = id;
		k_from = "JOB_COMPLETION_INDEX";
	} else if (env_num("SLURM_ARRAY_TASK_ID", &id)) {
		uint32_t count;
		env_num("SLURM_ARRAY_TASK_MIN", &min);
		if (id < min)
			tool_usage_error("verify", "SLURM_ARRAY_TASK_ID=%u is below SLURM_ARRAY_TASK_MIN=%u", id, min);
		k = id - min;
		k_from = "SLURM_ARRAY_TASK_ID";
		if (env_num("SLURM_ARRAY_TASK_COUNT", &count)) {
			if (has_n && count != n)
				tool_usage_error("verify", "%s says %u shards but SLURM_ARRAY_TASK_COUNT=%u",
						 n_from, n, count);
			if (!has_n) {
				n = count;
				n_from = "SLURM_ARRAY_TASK_COUNT";
				has_n = true;
			}
		}
	} else
		tool_usage_error("verify", "--shard %s: K comes from JOB_COMPLETION_INDEX or "
				 "SLURM_ARRAY_TASK_ID, and neither is set", opt ? opt : "(from VBFS_SHARDS)");
	if (!has_n)
		tool_usage_error("verify", "%s=%u gives K but not N: give --shard /N or VBFS_SHARDS=N",
				 k_from, id);
	if (n == 0 || n > VBFS_SHARDS_MAX)
		tool_usage_error("verify", "%s: N=%u must be 1..%u", n_from, n, VBFS_SHARDS_MAX);
	if (k >= n)
		tool_usage_error("verify", "%s gives K=%u, not below N=%u (%s)%s", k_from, k, n, n_from,
				 !strcmp(k_from, "SLURM_ARRAY_TASK_ID")
				 ? ": an array with steps or gaps (use --array=0-N-1)" : "");
	s->k = k;
	s->n = n;
	snprintf(source, 128, "K from %s, N from %s", k_from, n_from);
}

void scale_targets_load(const char *report, const char *verify_key, struct scale_targets *t)
{
	char why[VBFS_WHY_LEN];
	bool signed_;
	const cJSON *ev;
	memset(t, 0, sizeof *t);
	vbfs_err err = vbfs_report_load(report, verify_key, &t->doc, &signed_, why);
	if (err)
		tool_die("verify: --errors-only %s", why);
	size_t cap = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t->doc, "events"));
	t->v = xcalloc(cap, sizeof *t->v);
	t->paths = xcalloc(cap, sizeof *t->paths);
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(t->doc, "events")) {
		struct vbfs_event e;
		char *path;
		char bad[VBFS_WHY_LEN];
		if (vbfs_event_from_json(ev, &e, &path, bad))
			tool_die("verify: --errors-only %s: a bad event: %s", report, bad);
		if (!vbfs_event_is_damage(e.kind)) {    /* notes (transient, healed): nothing to confirm */
			free(path);
			continue;
		}
		t->paths[t->n] = path;
		t->v[t->n++] = (struct vbfs_scrub_target){ path, e.path_len, e.block };
	}
}

void scale_targets_free(struct scale_targets *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->paths[i]);
	free(t->paths);
	free(t->v);
	cJSON_Delete(t->doc);
}

static void trace_block(void *ctx, const struct vbfs_entry *e, uint64_t block)
{
	char line[64];
	int n = snprintf(line, sizeof line, "%llu %llu\n", (unsigned long long)e->id,
			 (unsigned long long)block);
	/* One write per line on an O_APPEND descriptor: shards never interleave. */
	if (write((int)(intptr_t)ctx, line, (size_t)n) != n)
		tool_die("VBFS_SCRUB_TRACE: %s", strerror(errno));
}

void scale_trace(struct vbfs_scrub_opts *o)
{
	const char *path = getenv("VBFS_SCRUB_TRACE");
	if (!path || !*path)
		return;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		tool_die("VBFS_SCRUB_TRACE %s: %s", path, strerror(errno));
	o->block_done = trace_block;
	o->block_ctx = (void *)(intptr_t)fd;
}
