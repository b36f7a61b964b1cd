/* json.c: see json.h. */
#include "json.h"

#include <inttypes.h>
#include <string.h>

void json_init(struct json *j)
{
	memset(j, 0, sizeof(*j));
}

void json_deinit(struct json *j)
{
	buf_free(&j->out);
}

/* Comma before a value unless it follows a key or opens its container. */
static void json_value_prefix(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->has_item[j->depth])
		buf_append_byte(&j->out, ',');
	j->has_item[j->depth] = true;
}

static void json_open(struct json *j, char c)
{
	json_value_prefix(j);
	buf_append_byte(&j->out, (uint8_t)c);
	/* Deeper nesting than the CLI ever writes would be a bug; clamp rather than overflow. */
	if (j->depth < JSON_MAX_DEPTH - 1)
		j->depth++;
	j->has_item[j->depth] = false;
}

static void json_close(struct json *j, char c)
{
	buf_append_byte(&j->out, (uint8_t)c);
	if (j->depth > 0)
		j->depth--;
}

void json_object_begin(struct json *j)
{
	json_open(j, '{');
}

void json_object_end(struct json *j)
{
	json_close(j, '}');
}

void json_array_begin(struct json *j)
{
	json_open(j, '[');
}

void json_array_end(struct json *j)
{
	json_close(j, ']');
}

void json_key(struct json *j, const char *key)
{
	json_value_prefix(j);
	json_escape(&j->out, key, strlen(key));
	buf_append_byte(&j->out, ':');
	j->after_key = true;
}

void json_string(struct json *j, const char *s)
{
	json_value_prefix(j);
	json_escape(&j->out, s, strlen(s));
}

void json_u64(struct json *j, uint64_t v)
{
	json_value_prefix(j);
	buf_printf(&j->out, "%" PRIu64, v);
}

void json_i64(struct json *j, int64_t v)
{
	json_value_prefix(j);
	buf_printf(&j->out, "%" PRId64, v);
}

void json_bool(struct json *j, bool v)
{
	json_value_prefix(j);
	buf_append(&j->out, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json *j)
{
	json_value_prefix(j);
	buf_append(&j->out, "null", 4);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one (overlong forms,
 * surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq_len(const uint8_t *p, size_t n)
{
	uint32_t cp;
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void json_escape(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	buf_append_byte(b, '"');
	while (i < len) {
		uint8_t c = p[i];
		size_t n;

		switch (c) {
		case '"':
			buf_append(b, "\\\"", 2);
			i++;
			continue;
		case '\\':
			buf_append(b, "\\\\", 2);
			i++;
			continue;
		case '\n':
			buf_append(b, "\\n", 2);
			i++;
			continue;
		case '\r':
			buf_append(b, "\\r", 2);
			i++;
			continue;
		case '\t':
			buf_append(b, "\\t", 2);
			i++;
			continue;
		case '\b':
			buf_append(b, "\\b", 2);
			i++;
			continue;
		case '\f':
			buf_append(b, "\\f", 2);
			i++;
			continue;
		default:
			break;
		}
		if (c < 0x20) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_append(b, e, sizeof(e));
			i++;
			continue;
		}
		n = utf8_seq_len(p + i, len - i);
		if (n == 0) {
			buf_append(b, "\\ufffd", 6);
			i++;
			continue;
		}
		buf_append(b, p + i, n);
		i += n;
	}
	buf_append_byte(b, '"');
}

int json_write(struct json *j, FILE *f)
{
	if (j->out.len && fwrite(j->out.data, 1, j->out.len, f) != j->out.len)
		return -1;
	if (fputc('\n', f) == EOF)
		return -1;
	return 0;
}

void json_kv_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_u64(j, v);
}

void json_kv_u64_or_null(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	if (v)
		json_u64(j, v);
	else
		json_null(j);
}

void json_kv_str(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	json_string(j, v);
}

void json_kv_str_or_null(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	if (v != NULL && *v != '\0')
		json_string(j, v);
	else
		json_null(j);
}
