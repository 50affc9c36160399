/*
 * heal.h - the --replica DIR (repeatable) and --parity DIR options that
 * verify, repair, sample and rto share: parsed once, opened once.
 */
#ifndef VBFS_TOOL_HEAL_H
#define VBFS_TOOL_HEAL_H

#include "tool.h"
#include "metrics.h"

#define TOOL_REPLICAS_MAX 8

struct tool_heal {
	const char *replicas[TOOL_REPLICAS_MAX];
	size_t nreplicas;
	const char *parity;
	vbfs_heal *h;
};

/* Option handlers: a usage error (exit 2) past 8 replicas or a second
 * --parity.  `cmd` names the subcommand in the message. */
void tool_heal_add_replica(struct tool_heal *t, const char *cmd, const char *dir);
void tool_heal_set_parity(struct tool_heal *t, const char *cmd, const char *dir);
/* Any sources given? */
bool tool_heal_given(const struct tool_heal *t);
/* Open the sources against `idx`: NULL when none were given; exit 2 with
 * one line when one cannot be used. */
vbfs_heal *tool_heal_open(struct tool_heal *t, const char *cmd, vbfs_index *idx,
			  const char *store);
void tool_heal_close(struct tool_heal *t);
/* The mount options for them: ",replica=A:B,parity=P" (malloc'd, "" when
 * none), each path escaped so that any path reaches the mount as it is. */
char *tool_heal_mount_opts(const struct tool_heal *t, const char *cmd);

/* The drills' private mount: `user_opts` (--mount-opts, may be NULL) plus
 * the sources, as one -o string (malloc'd; NULL when both are empty). */
char *tool_heal_privmount_opts(const struct tool_heal *t, const char *cmd, const char *user_opts);

/* What a mount's event log says about healing. */
struct tool_heal_report {
	struct { char source[4200]; uint64_t blocks; } by[TOOL_REPLICAS_MAX + 1];
	size_t n;
	uint64_t healed, unrepairable;
};
void tool_heal_read_log(const char *log, struct tool_heal_report *h);
/* "<prefix>restored, 3 blocks healed from replica:/x, 1 from parity" on
 * stderr; nothing when nothing was healed. */
void tool_heal_say(const char *prefix, const struct tool_heal_report *h);
/* vbfs_blocks_healed_total{store,source} and vbfs_blocks_unrepairable_total{store}. */
void tool_heal_metrics(struct metrics *m, const char *store, const struct tool_heal_report *h);
/* "healed", "healed_by_source", "unrepairable" into a JSON object. */
void tool_heal_json(cJSON *o, const struct tool_heal_report *h);

/* `dir` (which may not exist yet) must not be inside `store`: exit 2. */
void tool_require_outside(const char *cmd, const char *what, const char *dir, const char *store);

#endif
