/* test_cache.c: the worker's blob cache on a real loop and thread pool: storing a blob from
 * pieces, refusing corrupted, short, long and out-of-order ones, abandoning fetches when the
 * master goes, eviction of least recently used unpinned blobs, and reopening a directory
 * (index kept, stale temporary files removed). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cache.h"
#include "digest.h"
#include "fsutil.h"
#include "log.h"

struct events {
	int requests;
	uint8_t requested[DIGEST_LEN];
	int fetched;
	int status;
	char err[512];
	/* pin the blob when it arrives, as a waiting task would */
	struct cache *cache;
	uint64_t pin_size;
	struct cache_entry *pinned;
};

static char dir[256];
static uv_loop_t loop;

static void on_request(void *arg, const uint8_t sha[DIGEST_LEN])
{
	struct events *ev = arg;
	ev->requests++;
	memcpy(ev->requested, sha, DIGEST_LEN);
}

static void on_fetched(void *arg, const uint8_t sha[DIGEST_LEN], int status, const char *err)
{
	struct events *ev = arg;
	ev->fetched++;
	ev->status = status;
	snprintf(ev->err, sizeof(ev->err), "%s", err != NULL ? err : "");
	if (status == 0 && ev->pin_size > 0)
		ev->pinned = cache_pin(ev->cache, sha, ev->pin_size);
}

static const struct cache_callbacks callbacks = {on_request, on_fetched};

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/shoal-test-cache-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
	char err[256];
	ck_assert_int_eq(fs_rmtree(dir, err, sizeof(err)), 0);
}

static struct cache *open_cache(struct events *ev, uint64_t max)
{
	char err[512];
	struct cache *c = cache_open(&loop, dir, max, &callbacks, ev, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	ev->cache = c;
	return c;
}

static void on_closed(void *arg)
{
	*(int *)arg = 1;
}

static void close_cache(struct cache **c)
{
	int closed = 0;
	cache_close(*c, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(closed, 1);
	cache_destroy(c);
	ck_assert_ptr_null(*c);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Sends data as BlobData pieces of `piece` bytes, the last one flagged. */
static void send_blob(struct cache *c, const uint8_t sha[DIGEST_LEN], const char *data, size_t len,
                      size_t piece)
{
	size_t off = 0;
	do {
		size_t n = len - off < piece ? len - off : piece;
		Shoal__BlobData d = SHOAL__BLOB_DATA__INIT;
		d.sha256.data = (uint8_t *)sha;
		d.sha256.len = DIGEST_LEN;
		d.offset = off;
		d.data.data = (uint8_t *)data + off;
		d.data.len = n;
		off += n;
		d.has_last = true;
		d.last = off == len;
		cache_on_data(c, &d);
	} while (off < len);
}

static size_t count_files(const char *prefix)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* Fetches and stores a blob; returns its digest. */
static void store(struct cache *c, struct events *ev, const char *data, uint8_t sha[DIGEST_LEN])
{
	digest_buffer(data, strlen(data), sha);
	int before = ev->fetched;
	cache_fetch(c, sha, strlen(data));
	send_blob(c, sha, data, strlen(data), 7);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev->fetched, before + 1);
	ck_assert_msg(ev->status == 0, "%s", ev->err);
}

START_TEST(test_cache_store)
{
	struct events ev = {0};
	struct cache *c = open_cache(&ev, 1 << 20);
	ck_assert_uint_eq(cache_count(c), 0);
	const char *text = "#!/bin/sh\necho hello from a shipped script\n";
	uint8_t sha[DIGEST_LEN];
	digest_buffer(text, strlen(text), sha);
	ck_assert_ptr_null(cache_pin(c, sha, strlen(text)));

	cache_fetch(c, sha, strlen(text));
	ck_assert_int_eq(ev.requests, 1);
	ck_assert_int_eq(memcmp(ev.requested, sha, DIGEST_LEN), 0);
	ck_assert(cache_fetching(c, sha));
	/* A second want of the same blob asks nothing more. */
	cache_fetch(c, sha, strlen(text));
	ck_assert_int_eq(ev.requests, 1);

	send_blob(c, sha, text, strlen(text), 5);
	ck_assert_int_eq(ev.fetched, 0); /* the pool has not run yet */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.fetched, 1);
	ck_assert_int_eq(ev.status, 0);
	ck_assert(!cache_fetching(c, sha));
	ck_assert_uint_eq(cache_count(c), 1);
	ck_assert_uint_eq(cache_bytes(c), strlen(text));

	struct cache_entry *e = cache_pin(c, sha, strlen(text));
	ck_assert_ptr_nonnull(e);
	char hex[DIGEST_HEX_LEN + 1];
	digest_hex(sha, hex);
	char want[512];
	snprintf(want, sizeof(want), "%s/%s", dir, hex);
	ck_assert_str_eq(cache_entry_path(e), want);
	uint8_t got[DIGEST_LEN];
	uint64_t size;
	char err[256];
	ck_assert_int_eq(digest_file(want, got, &size, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(got, sha, DIGEST_LEN), 0);
	struct stat st;
	ck_assert_int_eq(stat(want, &st), 0);
	ck_assert_int_eq(st.st_mode & 0111, 0111); /* scripts can run from a link to it */
	ck_assert_uint_eq(count_files(".tmp."), 0);
	cache_unpin(&e);
	ck_assert_ptr_null(e);

	/* Data for a blob nobody fetches is ignored. */
	send_blob(c, sha, text, strlen(text), 100);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.fetched, 1);

	/* An empty blob is a blob. */
	uint8_t empty[DIGEST_LEN];
	digest_buffer("", 0, empty);
	cache_fetch(c, empty, 0);
	send_blob(c, empty, "", 0, 10);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.status, 0);
	e = cache_pin(c, empty, 0);
	ck_assert_ptr_nonnull(e);
	cache_unpin(&e);
	close_cache(&c);
}
END_TEST

START_TEST(test_cache_refusals)
{
	struct events ev = {0};
	struct cache *c = open_cache(&ev, 1 << 20);
	const char *text = "some training rows\n1,2,3\n";
	size_t len = strlen(text);
	uint8_t sha[DIGEST_LEN];
	digest_buffer(text, len, sha);

	/* Corrupted in transit: the hash does not match. */
	char bad[64];
	snprintf(bad, sizeof(bad), "%s", text);
	bad[3] ^= 1;
	cache_fetch(c, sha, len);
	send_blob(c, sha, bad, len, 4);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.fetched, 1);
	ck_assert_int_eq(ev.status, -1);
	ck_assert_ptr_nonnull(strstr(ev.err, "corrupted"));
	ck_assert_ptr_null(cache_pin(c, sha, len));
	ck_assert_uint_eq(count_files(".tmp."), 0);
	ck_assert_uint_eq(cache_count(c), 0);

	/* Ends early. */
	cache_fetch(c, sha, len);
	ck_assert_int_eq(ev.requests, 2);
	send_blob(c, sha, text, len - 1, 100);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.fetched, 2);
	ck_assert_int_eq(ev.status, -1);
	ck_assert_ptr_nonnull(strstr(ev.err, "ended after"));

	/* Longer than announced. */
	cache_fetch(c, sha, len - 2);
	send_blob(c, sha, text, len, 100);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.fetched, 3);
	ck_assert_ptr_nonnull(strstr(ev.err, "more than the announced"));

	/* Out of order: a piece that skips ahead, after a first piece has been written. */
	cache_fetch(c, sha, len);
	Shoal__BlobData d = SHOAL__BLOB_DATA__INIT;
	d.sha256.data = sha;
	d.sha256.len = DIGEST_LEN;
	d.data.data = (uint8_t *)text;
	d.data.len = 4;
	cache_on_data(c, &d);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(count_files(".tmp."), 1);
	d.offset = 8;
	cache_on_data(c, &d);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.fetched, 4);
	ck_assert_ptr_nonnull(strstr(ev.err, "offset 8"));
	ck_assert_uint_eq(count_files(".tmp."), 0);

	/* A wrong-length hash is ignored rather than trusted. */
	d.sha256.len = 5;
	cache_on_data(c, &d);

	/* After all that, the right bytes still make it. */
	store(c, &ev, text, sha);
	ck_assert_uint_eq(cache_count(c), 1);
	close_cache(&c);
}
END_TEST

START_TEST(test_cache_abort)
{
	struct events ev = {0};
	struct cache *c = open_cache(&ev, 1 << 20);
	const char *text = "half of a blob, then the master died";
	uint8_t sha[DIGEST_LEN];
	digest_buffer(text, strlen(text), sha);
	cache_fetch(c, sha, strlen(text));
	Shoal__BlobData d = SHOAL__BLOB_DATA__INIT;
	d.sha256.data = sha;
	d.sha256.len = DIGEST_LEN;
	d.data.data = (uint8_t *)text;
	d.data.len = 10;
	cache_on_data(c, &d);
	/* Abandoned while the first piece is in the pool. */
	cache_abort(c);
	ck_assert(!cache_fetching(c, sha));
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(ev.fetched, 0); /* no callback for abandoned fetches */
	ck_assert_uint_eq(count_files(".tmp."), 0);
	ck_assert_uint_eq(cache_count(c), 0);

	/* Later pieces of the old stream are ignored; a new fetch starts from zero. */
	d.offset = 10;
	cache_on_data(c, &d);
	store(c, &ev, text, sha);
	ck_assert_int_eq(ev.requests, 2);

	/* Close in the middle of a fetch: it is abandoned and the pool drained. */
	uint8_t sha2[DIGEST_LEN];
	const char *other = "another blob";
	digest_buffer(other, strlen(other), sha2);
	cache_fetch(c, sha2, strlen(other));
	d.sha256.data = sha2;
	d.offset = 0;
	d.data.data = (uint8_t *)other;
	d.data.len = 3;
	cache_on_data(c, &d);
	close_cache(&c);
	ck_assert_uint_eq(count_files(".tmp."), 0);
}
END_TEST

START_TEST(test_cache_evict)
{
	struct events ev = {0};
	/* Room for two of the 40-byte blobs below. */
	struct cache *c = open_cache(&ev, 100);
	const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
	const char *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";
	const char *cc = "ccccccccccccccccccccccccccccccccccccccc\n";
	const char *d = "ddddddddddddddddddddddddddddddddddddddd\n";
	uint8_t sa[DIGEST_LEN], sb[DIGEST_LEN], sc[DIGEST_LEN], sd[DIGEST_LEN];
	store(c, &ev, a, sa);
	store(c, &ev, b, sb);
	ck_assert_uint_eq(cache_count(c), 2);

	/* Using A makes B the least recently used: C evicts B. */
	struct cache_entry *e = cache_pin(c, sa, 40);
	cache_unpin(&e);
	store(c, &ev, cc, sc);
	uv_run(&loop, UV_RUN_DEFAULT); /* the unlink */
	ck_assert_uint_eq(cache_count(c), 2);
	ck_assert_ptr_null(cache_pin(c, sb, 40));
	char hex[DIGEST_HEX_LEN + 1], path[512];
	digest_hex(sb, hex);
	snprintf(path, sizeof(path), "%s/%s", dir, hex);
	ck_assert_int_ne(access(path, F_OK), 0);

	/* Pinned blobs stay, even over the bound; the last unpin evicts. */
	struct cache_entry *pa = cache_pin(c, sa, 40);
	struct cache_entry *pc = cache_pin(c, sc, 40);
	ev.pin_size = 40; /* D is pinned by its "waiter" on arrival */
	store(c, &ev, d, sd);
	ck_assert_ptr_nonnull(ev.pinned);
	ck_assert_uint_eq(cache_count(c), 3);
	ck_assert_uint_eq(cache_bytes(c), 120);
	cache_unpin(&pa); /* A: least recently used and free: goes */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(cache_count(c), 2);
	ck_assert_ptr_null(cache_pin(c, sa, 40));
	cache_unpin(&pc);
	cache_unpin(&ev.pinned);
	ck_assert_uint_eq(cache_count(c), 2);

	/* A file removed behind the cache's back is forgotten on request. */
	e = cache_pin(c, sd, 40);
	ck_assert_ptr_nonnull(e);
	cache_forget(e);
	ck_assert_uint_eq(cache_count(c), 1);
	ck_assert_str_eq(cache_entry_path(e) + strlen(dir) + 1, (digest_hex(sd, hex), hex));
	cache_unpin(&e);
	ck_assert_ptr_null(cache_pin(c, sd, 40));
	close_cache(&c);
}
END_TEST

START_TEST(test_cache_reopen)
{
	struct events ev = {0};
	struct cache *c = open_cache(&ev, 1 << 20);
	uint8_t s1[DIGEST_LEN], s2[DIGEST_LEN];
	store(c, &ev, "first blob\n", s1);
	store(c, &ev, "second blob\n", s2);
	close_cache(&c);

	/* Leftovers: a temp file of a dead writer, one of a live one (us), and junk. */
	char path[600];
	snprintf(path, sizeof(path), "%s/.tmp.%s.%d.1", dir, "ab", 999999999);
	FILE *f = fopen(path, "w");
	fputs("partial", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/.tmp.%s.%ld.1", dir, "cd", (long)getppid());
	f = fopen(path, "w");
	fputs("someone else's partial", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/README", dir);
	f = fopen(path, "w");
	fputs("not a blob", f);
	fclose(f);

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	c = open_cache(&ev, 1 << 20);
	ck_assert_uint_eq(cache_count(c), 2);
	ck_assert_uint_eq(cache_bytes(c), strlen("first blob\n") + strlen("second blob\n"));
	struct cache_entry *e = cache_pin(c, s2, strlen("second blob\n"));
	ck_assert_ptr_nonnull(e);
	cache_unpin(&e);
	/* The same hash with another size: treated as damaged and dropped. */
	ck_assert_ptr_null(cache_pin(c, s1, 3));
	ck_assert_uint_eq(cache_count(c), 1);
	ck_assert_uint_eq(count_files(".tmp."), 1); /* the live writer's stays */
	close_cache(&c);

	/* A smaller bound on reopening evicts at once. */
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	c = open_cache(&ev, 1);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(cache_count(c), 0);
	close_cache(&c);

	/* An unusable directory is reported, not fatal. */
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	char err[512];
	snprintf(path, sizeof(path), "%s/README/sub", dir);
	c = cache_open(&loop, path, 100, &callbacks, &ev, err, sizeof(err));
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err, "README"));
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_cache_default_dir)
{
	char out[512];
	if (geteuid() == 0) {
		ck_assert_int_eq(cache_default_dir(out, sizeof(out)), 0);
		ck_assert_str_eq(out, "/var/cache/shoal");
		ck_assert_int_eq(uv_loop_close(&loop), 0);
		return;
	}
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	ck_assert_int_eq(cache_default_dir(out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/x/cache/shoal");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/someone", 1);
	ck_assert_int_eq(cache_default_dir(out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/home/someone/.cache/shoal");
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cache_store);
	tcase_add_test(tc, test_cache_refusals);
	tcase_add_test(tc, test_cache_abort);
	tcase_add_test(tc, test_cache_evict);
	tcase_add_test(tc, test_cache_reopen);
	tcase_add_test(tc, test_cache_default_dir);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_set_level(LOG_ERROR); /* expected failures log warnings; the assertions speak */
	SRunner *sr = srunner_create(cache_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
