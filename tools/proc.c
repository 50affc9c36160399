/*
 * proc.c - child processes: spawn, wait, stop, describe.  See proc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "proc.h"
#include "tool.h"

void proc_sleep(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

static _Noreturn void child_exec(const struct proc_spawn *s, pid_t parent)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (s->new_group)
		setpgid(0, 0);
	if (s->die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)        /* died before the prctl */
			_exit(127);
	}
	int in = open("/dev/null", O_RDONLY);
	if (in >= 0 && in != 0) {
		dup2(in, 0);
		close(in);
	}
	if (s->stdout_fd >= 0)
		dup2(s->stdout_fd, 1);
	if (s->stderr_fd >= 0)
		dup2(s->stderr_fd, 2);
	for (const char *const *e = s->env; e && *e; e++)
		putenv((char *)*e);     /* the child's own copy of environ */
	execvp(s->argv[0], (char *const *)s->argv);
	dprintf(2, "vbfsctl: exec %s: %s\n", s->argv[0], strerror(errno));
	_exit(127);
}

pid_t proc_spawn(const struct proc_spawn *s, char why[VBFS_WHY_LEN])
{
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		vbfs_whyf(why, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		child_exec(s, parent);
	if (s->new_group)
		setpgid(pid, pid);      /* both sides: whichever runs first wins */
	return pid;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

enum proc_wait_result proc_wait(pid_t pid, double timeout, bool stoppable,
				int *status)
{
	double deadline = timeout >= 0 ? vbfs_monotonic() + timeout : 0;
	int pfd = open_pidfd(pid);
	enum proc_wait_result res;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD)) {
			if (r < 0)
				*status = 0;
			res = PROC_EXITED;
			break;
		}
		if (stoppable && tool_stop) {
			res = PROC_STOPPED;
			break;
		}
		double left = timeout >= 0 ? deadline - vbfs_monotonic() : 0.2;
		if (left <= 0) {
			res = PROC_TIMEOUT;
			break;
		}
		if (left > 0.2)
			left = 0.2;     /* wake up now and then to check tool_stop */
		if (pfd >= 0) {
			/* The pidfd turns readable the moment the child exits, so
			 * phase timings are not rounded up to a polling tick. */
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			poll(&p, 1, (int)(left * 1000) + 1);
		} else {
			proc_sleep(left < 0.01 ? left : 0.01);
		}
	}
	if (pfd >= 0)
		close(pfd);
	return res;
}

int proc_kill_group(pid_t pid, int sig, double grace)
{
	int status = 0;
	kill(-pid, sig);
	if (proc_wait(pid, grace, false, &status) == PROC_TIMEOUT) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		proc_wait(pid, -1, false, &status);
	}
	kill(-pid, SIGKILL);    /* stragglers the shell left in its group */
	return status;
}

void proc_status_text(int status, char *out, size_t n)
{
	if (WIFEXITED(status))
		snprintf(out, n, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, n, "killed by %s", sigabbrev_np(WTERMSIG(status))
			 ? sigabbrev_np(WTERMSIG(status)) : "a signal");
	else
		snprintf(out, n, "status %d", status);
}
