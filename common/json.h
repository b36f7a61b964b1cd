/* json.h: a tiny JSON writer for the CLI's --json output and the master's HTTP API.
 *
 * The writer appends to a buffer it owns and inserts commas itself. Strings are escaped per
 * RFC 8259; bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON
 * whatever a job name or error message contains. */
#ifndef SHOAL_JSON_H
#define SHOAL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"

#define JSON_MAX_DEPTH 16

struct json {
	struct buf out; /* owned; freed by json_deinit */
	int depth;
	bool has_item[JSON_MAX_DEPTH]; /* the container at this depth holds a value already */
	bool after_key;
};

void json_init(struct json *j);
void json_deinit(struct json *j);

void json_object_begin(struct json *j);
void json_object_end(struct json *j);
void json_array_begin(struct json *j);
void json_array_end(struct json *j);
/* The key of the next member (inside an object). */
void json_key(struct json *j, const char *key);

void json_string(struct json *j, const char *s);
void json_u64(struct json *j, uint64_t v);
void json_i64(struct json *j, int64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/* An object member in one call. The _or_null forms write null for 0 or an empty/NULL string,
 * where those mean "not yet" or "none". */
void json_kv_u64(struct json *j, const char *key, uint64_t v);
void json_kv_u64_or_null(struct json *j, const char *key, uint64_t v);
void json_kv_str(struct json *j, const char *key, const char *v);
void json_kv_str_or_null(struct json *j, const char *key, const char *v);

/* Appends s (len bytes) as a quoted, escaped JSON string. */
void json_escape(struct buf *b, const char *s, size_t len);

/* Writes the document and a newline to f; 0 or -1 (errno set). */
int json_write(struct json *j, FILE *f);

#endif
