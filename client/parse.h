/* parse.h: strict parsing of the CLI's numbers and small syntaxes. Socket-free, so the unit
 * tests cover it directly. Every function returns 0, or -1 with a reason in err (the reason
 * does not repeat the option name; callers prefix it). Out-params are set only on success. */
#ifndef SHOAL_CLIENT_PARSE_H
#define SHOAL_CLIENT_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* A base-10 integer in [min, max]: optional sign, digits, nothing else (no spaces). */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out, char *err, size_t errlen);
/* A base-10 unsigned integer up to max; a sign is rejected. */
int parse_u64(const char *s, uint64_t max, uint64_t *out, char *err, size_t errlen);
/* A byte size: digits with an optional K, M, G or T suffix (powers of 1024), optionally
 * followed by "B" or "iB" ("64K", "1MiB", "2GB"), case-insensitive. */
int parse_size(const char *s, uint64_t *out, char *err, size_t errlen);
/* LO:HI, both int64, LO <= HI. */
int parse_range(const char *s, int64_t *lo, int64_t *hi, char *err, size_t errlen);
/* KEY=VALUE with a non-empty KEY; VALUE may be empty. Sets *keylen to the length of KEY. */
int parse_kv(const char *s, size_t *keylen, char *err, size_t errlen);
/* A duration in seconds with up to three decimals ("30", "0.5", "2.125"), in [min_ms, max_ms]
 * once converted to milliseconds. */
int parse_seconds_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *out, char *err,
                     size_t errlen);
/* `--input job:ID`: returns 1 and *id (>= 1) if s is "job:" and a job ID, 0 if s does not
 * start with "job:" (a file name), -1 with a reason if the ID after "job:" is not one. */
int parse_job_input(const char *s, uint64_t *id, char *err, size_t errlen);
/* A lock name as the master takes it: 1 to max bytes, no control characters. */
int parse_lock_name(const char *s, size_t max, char *err, size_t errlen);

#endif
