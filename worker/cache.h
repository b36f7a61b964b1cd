/* cache.h: the worker's blob cache: files shipped with jobs (--file, --broadcast, --plugin),
 * kept in a directory under their hex SHA-256 so that each crosses the network once per
 * worker.
 *
 * The cache only stores: it asks its owner to request a missing blob (on_request; the
 * session sends BlobRequest), takes the master's BlobData pieces in order, writes them to a
 * temporary file and hashes them on the loop's thread pool, and at the last piece checks size
 * and SHA-256 and renames the file into place (on_fetched reports the outcome). Who waits for
 * which blob is the owner's business (prep.c).
 *
 * A blob in use is pinned (cache_pin) and never evicted; when the files add up to more than
 * max_bytes, the least recently pinned unpinned ones are removed.
 *
 *   missing --cache_fetch--> FETCHING --last piece, verified--> CACHED --evicted--> missing
 *                               |   \--mismatch / bad piece--> missing (on_fetched: error)
 *                               \--cache_abort (master lost)--> missing (partial file removed)
 *
 * Everything runs on the loop thread except the file work, which the pool does one request
 * at a time per blob. One worker per cache directory: another process evicting files behind
 * this one's back makes tasks fail (and retry) rather than corrupt anything. */
#ifndef SHOAL_WORKER_CACHE_H
#define SHOAL_WORKER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "digest.h"
#include "shoal.pb-c.h"

struct cache;
struct cache_entry; /* one cached blob */

struct cache_callbacks {
	/* Ask the master for this blob (BlobRequest). */
	void (*on_request)(void *arg, const uint8_t sha[DIGEST_LEN]);
	/* A fetch ended: status 0 (the blob is cached now) or -1 with the reason in err. */
	void (*on_fetched)(void *arg, const uint8_t sha[DIGEST_LEN], int status, const char *err);
};

/* Default directory: /var/cache/shoal as root, else $XDG_CACHE_HOME/shoal or
 * ~/.cache/shoal. Writes it into out; -1 if no home directory can be found. */
int cache_default_dir(char *out, size_t outlen);

/* Creates dir (and its parents) if needed, indexes the blobs in it and removes temporary
 * files that dead processes left behind. Blocking: call it before the loop runs. Returns an
 * owned cache, or NULL with a reason in err. cb is copied. */
struct cache *cache_open(uv_loop_t *loop, const char *dir, uint64_t max_bytes,
                         const struct cache_callbacks *cb, void *arg, char *err, size_t errlen);
/* Requires cache_close's callback to have run (or no fetch ever started) and no entry to be
 * pinned. Sets *c to NULL. */
void cache_destroy(struct cache **c);

/* The blob if it is cached with this size, pinned (never evicted while pinned) and marked
 * most recently used; NULL if it is not cached. Release it with cache_unpin. */
struct cache_entry *cache_pin(struct cache *c, const uint8_t sha[DIGEST_LEN], uint64_t size);
/* Sets *e to NULL. */
void cache_unpin(struct cache_entry **e);
/* The blob's file; valid while pinned. */
const char *cache_entry_path(const struct cache_entry *e);
/* The pinned blob's file turned out to be missing or unreadable: forget it, so that the
 * next use fetches it again. The entry stays valid until unpinned. */
void cache_forget(struct cache_entry *e);

/* Starts fetching a blob that is not cached, unless it is being fetched already; on_request
 * follows at once for a new fetch. */
void cache_fetch(struct cache *c, const uint8_t sha[DIGEST_LEN], uint64_t size);
/* True while a fetch of this blob is in progress. */
bool cache_fetching(const struct cache *c, const uint8_t sha[DIGEST_LEN]);
/* A piece of a blob from the master. Borrows d (the bytes are copied). Pieces of blobs not
 * being fetched are ignored; a piece out of order or beyond the announced size fails the
 * fetch. */
void cache_on_data(struct cache *c, const Shoal__BlobData *d);
/* The master is gone: every fetch is abandoned and its partial file removed, without
 * on_fetched (the owner drops the tasks that waited). */
void cache_abort(struct cache *c);
/* Abandons the fetches, then calls on_closed once no file work is left in the pool (maybe
 * before returning). */
void cache_close(struct cache *c, void (*on_closed)(void *arg), void *arg);

const char *cache_dir(const struct cache *c);
/* Bytes of the cached files, and how many there are. */
uint64_t cache_bytes(const struct cache *c);
size_t cache_count(const struct cache *c);

#endif
