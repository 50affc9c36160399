/*
 * privmount.h - the private vbfs mount used by `vbfsctl sample` and the
 * mount phase of `vbfsctl rto`, plus the process and scratch-directory
 * plumbing both drills share.
 *
 * A drill owns one work directory, $TMPDIR/vbfs-<what>.XXXXXX, holding
 *   mnt/        the private mountpoint
 *   scratch/    where restores are written
 *   events.log  the mount's JSON-lines event log (doc/interface.md "Events")
 *   vbfs.err    the daemon's stderr
 * The daemon is the real vbfs binary run in the foreground (`vbfs -f`), in
 * its own process group (a terminal's Ctrl-C reaches vbfsctl, which unmounts
 * in order) and with PR_SET_PDEATHSIG, so even a vbfsctl killed with
 * SIGKILL does not leave a mount behind.
 *
 * Signals: drill_install_signals() makes SIGINT/SIGTERM/SIGHUP set
 * drill_stop (the signal number) and nothing else; every wait loop here
 * checks it, and the callers then clean up and exit 2.
 */
#ifndef VBFS_PRIVMOUNT_H
#define VBFS_PRIVMOUNT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "vbfs.h"

extern volatile sig_atomic_t drill_stop;
void drill_install_signals(void);

/* ---- child processes --------------------------------------------------- */

struct drill_spawn {
	const char *const *argv;        /* argv[0] is looked up in PATH unless it has a / */
	const char *const *env;         /* "NAME=VALUE" added to the environment, NULL-ended */
	int  stdout_fd, stderr_fd;      /* -1: inherit */
	bool new_group;                 /* setpgid(0, 0): signals are forwarded by us */
	bool die_with_parent;           /* PR_SET_PDEATHSIG SIGTERM */
};

/* fork + exec; stdin is /dev/null.  Returns the pid, or -1 with `why`. */
pid_t drill_spawn(const struct drill_spawn *s, char why[VBFS_WHY_LEN]);

enum drill_wait_result { DRILL_EXITED = 0, DRILL_TIMEOUT, DRILL_STOPPED };

/*
 * Wait for `pid` (a child) to exit, at most `timeout` seconds (< 0: no
 * limit).  With `stoppable`, return DRILL_STOPPED as soon as drill_stop is
 * set (the child is still running then).  *status is the waitpid status.
 */
enum drill_wait_result drill_wait(pid_t pid, double timeout, bool stoppable,
				  int *status);

/*
 * Stop a child running in its own process group: send `sig` to the group,
 * wait up to `grace` seconds, then SIGKILL the group and reap.  Returns the
 * waitpid status.
 */
int drill_kill_group(pid_t pid, int sig, double grace);

/* "exit 3", "killed by SIGTERM" */
void drill_status_text(int status, char *out, size_t n);

/* ---- the work directory ------------------------------------------------- */

/* mkdtemp("$TMPDIR/vbfs-<what>.XXXXXX") with mnt/ and scratch/ in it;
 * malloc'd path, or NULL with `why`. */
char *drill_workdir(const char *what, char why[VBFS_WHY_LEN]);

/* rm -r that never crosses into another filesystem (a mount that is still
 * there is left alone, and the removal then fails).  0 or -1 with errno. */
int drill_rmtree(const char *path);

/* ---- the private mount -------------------------------------------------- */

struct privmount {
	char  *mnt, *log, *errlog;      /* inside the work directory */
	pid_t  pid;                     /* the vbfs daemon, 0 when none */
	bool   mounted;
	int    status;                  /* daemon's exit status after stop, -1 if unknown */
};

/* --mount-opts: extra vbfs -o options (e.g. "allow_other") for the private
 * mount; with allow_other the work directory is made 0711 so other users
 * can reach the mountpoint (scratch/ stays 0700). */
extern const char *privmount_mount_opts;

/* The vbfs binary: $VBFS_BIN, then beside this vbfsctl (build tree:
 * ../fs/vbfs; installed: ./vbfs), then VBFS_BINDIR.  NULL if none runs. */
const char *privmount_find_vbfs(void);

/*
 * Mount STORE with INDEX at WORK/mnt, logging to WORK/events.log; wait
 * (10 s at most) until the mountpoint is a different filesystem than its
 * parent.  On failure nothing stays mounted and `why` has the daemon's own
 * last words.  VBFS_ERR_INTERRUPTED when drill_stop was set meanwhile.
 */
vbfs_err privmount_start(struct privmount *pm, const char *work,
			 const char *store, const char *index,
			 char why[VBFS_WHY_LEN]);

/*
 * Unmount (fusermount3 -u, retried while busy, then lazily), reap the
 * daemon (SIGTERM, SIGKILL if it lingers), remove the mountpoint.  Safe to
 * call twice and on a never-started privmount.  VBFS_OK when the mountpoint
 * is gone.
 */
vbfs_err privmount_stop(struct privmount *pm, char why[VBFS_WHY_LEN]);
void     privmount_free(struct privmount *pm);

/* Live counters of a vbfs mount (the user.vbfs.stats xattr). */
struct vbfs_stats {
	uint64_t blocks_verified, bytes_verified;
	uint64_t events[VBFS_EV_COUNT];
};
vbfs_err privmount_stats(const char *mnt, struct vbfs_stats *st, char why[VBFS_WHY_LEN]);

/* The mount's index path (the user.vbfs.index xattr), malloc'd, or NULL. */
char *privmount_index_of(const char *mnt);

/* What an event log says. */
#define DRILL_KEEP_EVENTS 20
struct drill_events {
	uint64_t by_kind[VBFS_EV_COUNT];
	uint64_t damage;                /* events that are damage */
	uint64_t lines, unparsed;
	size_t   kept;
	char    *first[DRILL_KEEP_EVENTS];  /* "corrupt db/app.dump block 3 offset 3145728" */
};

/* Read a JSON-lines event log.  A missing log is an empty one. */
vbfs_err drill_read_events(const char *log, struct drill_events *ev,
			   char why[VBFS_WHY_LEN]);
void     drill_events_free(struct drill_events *ev);

/* Is an event named `kind` damage?  Everything but unindexed and transient
 * (unknown kinds count as damage: better a false alarm than a quiet loss). */
bool drill_kind_is_damage(const char *kind, int *kind_index);

#endif
