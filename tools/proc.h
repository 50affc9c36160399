/*
 * proc.h - child processes for vbfsctl: start one (its own process group,
 * tied to our life), wait for it without missing a stop signal, stop its
 * whole group, and say how it ended.  The drills run the vbfs daemon and
 * the operator's restore and validate commands through these.
 *
 * Signals: vbfsctl has one stop flag, tool_stop (tool.h).  A child starts
 * with the default dispositions and an empty signal mask; a child in its
 * own group is not reached by a terminal's Ctrl-C, so vbfsctl decides when
 * and how it stops (proc_kill_group).
 */
#ifndef VBFS_PROC_H
#define VBFS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "vbfs.h"

struct proc_spawn {
	const char *const *argv;        /* argv[0] is looked up in PATH unless it has a / */
	const char *const *env;         /* "NAME=VALUE" added to the environment, NULL-ended */
	int  stdout_fd, stderr_fd;      /* -1: inherit */
	bool new_group;                 /* setpgid(0, 0): signals are forwarded by us */
	bool die_with_parent;           /* PR_SET_PDEATHSIG SIGTERM */
};

/* fork + exec; stdin is /dev/null.  Returns the pid, or -1 with `why`. */
pid_t proc_spawn(const struct proc_spawn *s, char why[VBFS_WHY_LEN]);

enum proc_wait_result { PROC_EXITED = 0, PROC_TIMEOUT, PROC_STOPPED };

/*
 * Wait for `pid` (a child) to exit, at most `timeout` seconds (< 0: no
 * limit).  With `stoppable`, return PROC_STOPPED as soon as tool_stop is
 * set (the child is still running then).  *status is the waitpid status.
 */
enum proc_wait_result proc_wait(pid_t pid, double timeout, bool stoppable,
				int *status);

/*
 * Stop a child running in its own process group: send `sig` to the group,
 * wait up to `grace` seconds, then SIGKILL the group and reap.  Returns the
 * waitpid status.
 */
int proc_kill_group(pid_t pid, int sig, double grace);

/* "exit 3", "killed by SIGTERM" */
void proc_status_text(int status, char *out, size_t n);

/* Sleep `s` seconds (a signal may cut it short). */
void proc_sleep(double s);

#endif
