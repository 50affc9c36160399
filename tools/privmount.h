/*
 * privmount.h - the private vbfs mount used by `vbfsctl sample` and the
 * mount phase of `vbfsctl rto`, and what it reports: its live counters
 * (the user.vbfs.stats xattr) and its event log.
 *
 * The mount lives in a drill's work directory (workdir.h): WORK/mnt is the
 * mountpoint, WORK/events.log the event log, WORK/vbfs.err the daemon's
 * stderr.  The daemon is the real vbfs binary run in the foreground
 * (`vbfs -f`), in its own process group (a terminal's Ctrl-C reaches
 * vbfsctl, which unmounts in order) and with PR_SET_PDEATHSIG, so even a
 * vbfsctl killed with SIGKILL does not leave a mount behind.  Waits stop
 * early when tool_stop (tool.h) is set; the callers then clean up and
 * exit 2.
 */
#ifndef VBFS_PRIVMOUNT_H
#define VBFS_PRIVMOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "vbfs.h"

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
 * last words.  VBFS_ERR_INTERRUPTED when tool_stop was set meanwhile.
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
struct privmount_stats {
	uint64_t blocks_verified, bytes_verified;
	uint64_t events[VBFS_EV_COUNT];
};
vbfs_err privmount_stats(const char *mnt, struct privmount_stats *st, char why[VBFS_WHY_LEN]);

/* The mount's index path (the user.vbfs.index xattr), malloc'd, or NULL. */
char *privmount_index_of(const char *mnt);

/* What an event log says. */
#define PRIVMOUNT_KEEP_EVENTS 20
struct privmount_events {
	uint64_t by_kind[VBFS_EV_COUNT];
	uint64_t damage;                /* events that are damage */
	uint64_t lines, unparsed;
	size_t   kept;
	char    *first[PRIVMOUNT_KEEP_EVENTS];  /* "corrupt db/app.dump block 3 offset 3145728" */
};

/* Read a JSON-lines event log.  A missing log is an empty one.  Damage is
 * the library's vbfs_event_is_damage(); an unknown kind counts as damage. */
vbfs_err privmount_read_events(const char *log, struct privmount_events *ev,
			       char why[VBFS_WHY_LEN]);
void     privmount_events_free(struct privmount_events *ev);

#endif
