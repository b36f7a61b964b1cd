/* notify.h: readiness and status for the service manager (systemd's Type=notify).
 *
 * Built with libsystemd (meson option -Dsystemd, on when libsystemd-dev is installed), these
 * send sd_notify(3) messages when $NOTIFY_SOCKET is set, i.e. when systemd started us with
 * Type=notify; otherwise, and in builds without libsystemd, they do nothing, and the units
 * in deploy/ are installed as Type=simple. Neither call blocks on the loop nor fails the
 * daemon: a lost notification is logged at debug level and forgotten. */
#ifndef SHOAL_NOTIFY_H
#define SHOAL_NOTIFY_H

/* READY=1 with a STATUS= line (borrowed): the master once it listens, the worker once it is
 * registered. Repeating it (a worker that registers again) is harmless. */
void notify_ready(const char *status);

/* STATUS= alone (borrowed), e.g. a worker that lost its master and reconnects. */
void notify_status(const char *status);

/* STOPPING=1: the daemon drains and exits; systemd shows "deactivating" meanwhile. */
void notify_stopping(void);

#endif
