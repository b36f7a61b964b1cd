/* notify.c: sd_notify(3) messages for Type=notify units (see notify.h). */
#include "notify.h"

#include <string.h>

#include "log.h"

#ifdef SHOAL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void notify_send(const char *state, const char *status)
{
	/* unset_environment=0: STOPPING=1 comes later and needs $NOTIFY_SOCKET. Children of
	 * the worker (--exec commands) inherit it, but NotifyAccess=main (the default)
	 * ignores anything they send. */
	int rc = status != NULL ? sd_notifyf(0, "%s%sSTATUS=%s", state, *state ? "\n" : "", status)
	                        : sd_notify(0, state);
	if (rc < 0)
		log_debug("notify", "sd_notify(%s) failed: %s", state, strerror(-rc));
}
#else
static void notify_send(const char *state, const char *status)
{
	(void)state;
	(void)status;
}
#endif

void notify_ready(const char *status)
{
	notify_send("READY=1", status);
}

void notify_status(const char *status)
{
	notify_send("", status);
}

void notify_stopping(void)
{
	notify_send("STOPPING=1", NULL);
}
