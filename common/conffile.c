/* conffile.c: see config.h. The INI syntax is inih's; this module maps sections and keys onto the
 * program's option table and keeps each entry's origin for error messages. */
#include "conffile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

enum { RANK_CLUSTER, RANK_SECTION, RANK_ENV };

const char *const conffile_cluster_keys[] = {"master", "secret-file", "log-level", NULL};

static const char *const conffile_sections[] = {"cluster", "master", "worker", "client", NULL};

static const char *conffile_cur_origin;

const char *conffile_origin(void)
{
	return conffile_cur_origin;
}

void conffile_init(struct conffile *c, const char *prog, const char *section,
                   const struct option *opts)
{
	memset(c, 0, sizeof(*c));
	c->prog = prog;
	c->section = section;
	c->opts = opts;
}

void conffile_deinit(struct conffile *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].value);
		free(c->v[i].origin);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

bool conffile_key_reserved(const char *name)
{
	static const char *const reserved[] = {"config", "print-config", "help", "version"};
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (strcmp(name, reserved[i]) == 0)
			return true;
	return false;
}

int conffile_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static bool conffile_in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static const struct option *conffile_find_opt(const struct conffile *c, const char *name)
{
	if (conffile_key_reserved(name))
		return NULL;
	for (const struct option *o = c->opts; o->name; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

/* Lists the keys the program's section takes, for an "unknown key" message. */
static void conffile_known_keys(const struct conffile *c, char *out, size_t outlen)
{
	size_t len = 0;
	out[0] = '\0';
	for (const struct option *o = c->opts; o->name; o++) {
		if (conffile_key_reserved(o->name))
			continue;
		int n = snprintf(out + len, outlen - len, "%s%s", len ? ", " : "", o->name);
		if (n < 0 || (size_t)n >= outlen - len)
			break;
		len += (size_t)n;
	}
}

/* Adds or replaces the entry of opt. Returns the entry it replaced at the same rank, if any
 * (the caller reports a duplicate), else NULL. */
static const struct conffile_entry *conffile_put(struct conffile *c, const struct option *opt,
                                                 const char *value, const char *origin, int rank)
{
	for (size_t i = 0; i < c->n; i++) {
		struct conffile_entry *e = &c->v[i];
		if (e->opt != opt)
			continue;
		if (e->rank == rank && rank != RANK_ENV)
			return e;
		if (e->rank > rank)
			return NULL; /* a stronger source already set it */
		free(e->value);
		free(e->origin);
		e->value = value ? xstrdup(value) : NULL;
		e->origin = xstrdup(origin);
		e->rank = rank;
		return NULL;
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 8;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n++] = (struct conffile_entry){
	    .opt = opt,
	    .value = value ? xstrdup(value) : NULL,
	    .origin = xstrdup(origin),
	    .rank = rank,
	};
	return NULL;
}

/* Takes one KEY = VALUE for opt: a switch's value must be a boolean. */
static int conffile_take(struct conffile *c, const struct option *opt, const char *value,
                         const char *origin, int rank, char *err, size_t errlen)
{
	if (opt->has_arg == no_argument) {
		bool on;
		if (conffile_parse_bool(value, &on) < 0)
			return errorf(err, errlen,
			              "%s: '%s' is a switch: give true or false, not '%s'", origin,
			              opt->name, value);
		value = on ? "true" : NULL;
	}
	const struct conffile_entry *dup = conffile_put(c, opt, value, origin, rank);
	if (dup)
		return errorf(err, errlen, "%s: key '%s' is set twice (first at %s); keep one",
		              origin, opt->name, dup->origin);
	return 0;
}

/* ---- files ---- */

struct conffile_reader {
	const char *p, *end;
	int line;
	bool too_long; /* a line did not fit inih's buffer */
	bool nul;      /* a NUL byte: not a text file */
};

/* inih's fgets: one line from memory, counted, so that handlers know their line. */
static char *conffile_reader_next(char *str, int num, void *stream)
{
	struct conffile_reader *r = stream;
	if (r->p >= r->end || num < 2)
		return NULL;
	size_t room = (size_t)num - 1, n = 0;
	while (n < room && r->p + n < r->end && r->p[n] != '\n')
		n++;
	bool nl = r->p + n < r->end && r->p[n] == '\n';
	if (n == room && !nl && r->p + n < r->end) {
		r->line++;
		r->too_long = true;
		return NULL;
	}
	if (memchr(r->p, '\0', n)) {
		r->line++;
		r->nul = true;
		return NULL;
	}
	if (nl && n < room)
		n++;
	else if (nl) { /* the line fills the buffer exactly; its '\n' comes next time */
		r->line++;
		r->too_long = true;
		return NULL;
	}
	memcpy(str, r->p, n);
	str[n] = '\0';
	r->p += n;
	r->line++;
	return str;
}

struct conffile_parse {
	struct conffile *c;
	const char *name;
	struct conffile_reader rd;
	char *err;
	size_t errlen;
	int failed_line; /* line of the first error a handler found, 0 if none */
};

/* Strips one pair of double quotes around a value: `name = "a b"`. */
static void conffile_unquote(const char *v, char *out, size_t outlen)
{
	size_t n = strlen(v);
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		snprintf(out, outlen, "%.*s", (int)(n - 2), v + 1);
	else
		snprintf(out, outlen, "%s", v);
}

static int conffile_on_key(void *user, const char *section, const char *name, const char *value)
{
	struct conffile_parse *ps = user;
	struct conffile *c = ps->c;
	char origin[PATH_MAX + 32];
	char key[128], val[4096], known[1024];

	if (ps->failed_line)
		return 1; /* report the first error only */
	snprintf(origin, sizeof(origin), "%s:%d", ps->name, ps->rd.line);
	snprintf(key, sizeof(key), "%s", name);
	for (char *k = key; *k; k++)
		if (*k == '_')
			*k = '-';
	conffile_unquote(value, val, sizeof(val));

	int rc = 0;
	if (section[0] == '\0') {
		rc = errorf(ps->err, ps->errlen,
		            "%s: key '%s' is outside any section; put it under [%s] (or [cluster])",
		            origin, key, c->section);
	} else if (!conffile_in_list(conffile_sections, section)) {
		rc = errorf(ps->err, ps->errlen,
		            "%s: unknown section [%s] (known: [cluster], [master], [worker], "
		            "[client])",
		            origin, section);
	} else if (strcmp(section, "cluster") == 0) {
		if (!conffile_in_list(conffile_cluster_keys, key)) {
			rc = errorf(
			    ps->err, ps->errlen,
			    "%s: unknown key '%s' in [cluster] (it takes master, secret-file, "
			    "log-level; other keys go in their program's section)",
			    origin, key);
		} else {
			const struct option *opt = conffile_find_opt(c, key);
			if (opt) /* else: a key of the other programs */
				rc = conffile_take(c, opt, val, origin, RANK_CLUSTER, ps->err,
				                   ps->errlen);
		}
	} else if (strcmp(section, c->section) == 0) {
		const struct option *opt = conffile_find_opt(c, key);
		if (conffile_key_reserved(key)) {
			rc = errorf(ps->err, ps->errlen, "%s: '%s' cannot be set in a config file",
			            origin, key);
		} else if (!opt) {
			conffile_known_keys(c, known, sizeof(known));
			rc = errorf(ps->err, ps->errlen, "%s: unknown key '%s' in [%s] (known: %s)",
			            origin, key, section, known);
		} else {
			rc = conffile_take(c, opt, val, origin, RANK_SECTION, ps->err, ps->errlen);
		}
	}
	/* Another program's section: its keys are that program's business. */
	if (rc < 0) {
		ps->failed_line = ps->rd.line;
		return 0;
	}
	return 1;
}

int conffile_read_text(struct conffile *c, const char *name, const char *text, size_t len,
                       char *err, size_t errlen)
{
	struct conffile_parse ps = {
	    .c = c,
	    .name = name,
	    .rd = {.p = text, .end = text + len},
	    .err = err,
	    .errlen = errlen,
	};
	int rc = ini_parse_stream(conffile_reader_next, &ps.rd, conffile_on_key, &ps);
	if (ps.rd.too_long)
		return errorf(err, errlen, "%s:%d: line too long (a line holds at most %d bytes)",
		              name, ps.rd.line, INI_MAX_LINE - 2);
	if (ps.rd.nul)
		return errorf(err, errlen, "%s:%d: NUL byte: not a text file", name, ps.rd.line);
	if (rc == -2)
		return errorf(err, errlen, "%s: out of memory", name);
	if (rc < 0)
		return errorf(err, errlen, "%s: cannot be parsed", name);
	if (ps.failed_line && (rc == 0 || ps.failed_line <= rc))
		return -1; /* err is set */
	if (rc > 0)
		return errorf(err, errlen,
		              "%s:%d: syntax error: expected [SECTION], KEY = VALUE or a comment "
		              "(; or #)",
		              name, rc);
	return 0;
}

int conffile_read_file(struct conffile *c, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errorf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFFILE_MAX_BYTES) {
		int e = errno;
		bool big = st.st_size > CONFFILE_MAX_BYTES && S_ISREG(st.st_mode);
		close(fd);
		if (big)
			return errorf(err, errlen, "%s: larger than %u bytes: not a config file",
			              path, CONFFILE_MAX_BYTES);
		return errorf(err, errlen, "%s: not a regular file%s%s", path, e ? ": " : "",
		              e ? strerror(e) : "");
	}
	char *text = xmalloc((size_t)st.st_size + 1);
	ssize_t n = pread_all(fd, text, (size_t)st.st_size, 0);
	int e = errno;
	close(fd);
	if (n < 0) {
		free(text);
		return errorf(err, errlen, "%s: cannot read: %s", path, strerror(e));
	}
	int rc = conffile_read_text(c, path, text, (size_t)n, err, errlen);
	free(text);
	return rc;
}

/* ---- environment ---- */

int conffile_read_env(struct conffile *c, char *err, size_t errlen)
{
	for (const struct option *o = c->opts; o->name; o++) {
		if (conffile_key_reserved(o->name))
			continue;
		char var[128];
		int n = snprintf(var, sizeof(var), "SHOAL_%s", o->name);
		if (n < 0 || (size_t)n >= sizeof(var))
			continue;
		for (char *p = var; *p; p++)
			*p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
		const char *v = getenv(var);
		if (!v || !*v)
			continue;
		if (conffile_take(c, o, v, var, RANK_ENV, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* ---- applying ---- */

int conffile_apply(const struct conffile *c, conffile_apply_fn apply, void *arg)
{
	/* Lowest rank first; within a rank, the order the entries came in. */
	for (int rank = RANK_CLUSTER; rank <= RANK_ENV; rank++) {
		for (size_t i = 0; i < c->n; i++) {
			const struct conffile_entry *e = &c->v[i];
			if (e->rank != rank)
				continue;
			if (e->opt->has_arg == no_argument && !e->value)
				continue; /* a switch set to false: the default */
			size_t len = strlen(e->opt->name) + (e->value ? strlen(e->value) : 0) + 4;
			char *flag = xmalloc(len);
			if (e->opt->has_arg == no_argument)
				snprintf(flag, len, "--%s", e->opt->name);
			else
				snprintf(flag, len, "--%s=%s", e->opt->name, e->value);
			char *prog = xstrdup(c->prog);
			char *argv[3] = {prog, flag, NULL};
			conffile_cur_origin = e->origin;
			int rc = apply(arg, 2, argv);
			conffile_cur_origin = NULL;
			free(prog);
			free(flag);
			if (rc)
				return rc;
		}
	}
	return 0;
}

const char *conffile_path(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		if (strcmp(a, "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(a, "--config=", 9) == 0)
			path = a + 9;
	}
	if (path)
		return path;
	const char *env = getenv("SHOAL_CONFIG");
	return env && *env ? env : NULL;
}
