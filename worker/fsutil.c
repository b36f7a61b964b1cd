/* fsutil.c: blocking file-system helpers (see fsutil.h). */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int fs_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(tmp))
		return errorf(err, errlen, "invalid directory '%s'", path);
	memcpy(tmp, path, n + 1);
	/* Create each prefix in turn; existing ones are fine as long as they are directories. */
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char saved = tmp[i];
		tmp[i] = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return errorf(err, errlen, "cannot create directory %s: %s", tmp,
			              strerror(errno));
		tmp[i] = saved;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		return errorf(err, errlen, "cannot use directory %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return errorf(err, errlen, "%s is not a directory", path);
	return 0;
}

static int fs_rmtree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
	/* Keep going: remove as much as possible; the caller checks the top at the end. */
	(void)rc;
	return 0;
}

/* Pre-order pass: a child may have left directories without write or search permission,
 * which would stop the removal pass. */
static int fs_rmtree_chmod(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_D && (st->st_mode & 0700) != 0700)
		(void)chmod(path, st->st_mode | 0700);
	return 0;
}

int fs_rmtree(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return errorf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) != 0 && errno != ENOENT)
			return errorf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
		return 0;
	}
	(void)nftw(path, fs_rmtree_chmod, 32, FTW_PHYS);
	(void)nftw(path, fs_rmtree_one, 32, FTW_PHYS | FTW_DEPTH);
	if (lstat(path, &st) == 0)
		return errorf(err, errlen, "cannot remove %s completely", path);
	return 0;
}

static int fs_copy(const char *src, const char *dst, char *err, size_t errlen)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errorf(err, errlen, "cannot read %s: %s", src, strerror(errno));
	struct stat st;
	if (fstat(in, &st) != 0) {
		int e = errno;
		close(in);
		return errorf(err, errlen, "cannot stat %s: %s", src, strerror(e));
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0) {
		int e = errno;
		close(in);
		return errorf(err, errlen, "cannot create %s: %s", dst, strerror(e));
	}
	char buf[64 * 1024];
	int rc = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = errorf(err, errlen, "cannot read %s: %s", src, strerror(errno));
			break;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				rc = errorf(err, errlen, "cannot write %s: %s", dst,
				            strerror(errno));
				break;
			}
			off += w;
		}
		if (rc != 0)
			break;
	}
	/* The umask may have cleared bits at creation: scripts must stay executable. */
	if (rc == 0 && fchmod(out, st.st_mode & 07777) != 0)
		rc = errorf(err, errlen, "cannot chmod %s: %s", dst, strerror(errno));
	if (close(out) != 0 && rc == 0)
		rc = errorf(err, errlen, "cannot write %s: %s", dst, strerror(errno));
	close(in);
	if (rc != 0)
		(void)unlink(dst);
	return rc;
}

int fs_link_or_copy(const char *src, const char *dst, char *err, size_t errlen)
{
	if (link(src, dst) == 0)
		return 0;
	/* EXDEV (another file system), EPERM (hard links forbidden there), EMLINK: copy. */
	if (errno == EEXIST)
		return errorf(err, errlen, "%s exists already", dst);
	if (errno == ENOENT && access(src, F_OK) != 0)
		return errorf(err, errlen, "cannot read %s: %s", src, strerror(ENOENT));
	return fs_copy(src, dst, err, errlen);
}
