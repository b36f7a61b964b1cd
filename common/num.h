/* num.h: exact integers for the integer ops. Records are parsed into 128-bit integers and
 * every arithmetic step checks for overflow, so a result is either exact or an error, never
 * silently wrapped. Printing matches Python's str(int). */
#ifndef SHOAL_NUM_H
#define SHOAL_NUM_H

#include <stddef.h>
#include <stdint.h>

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

/* Enough for "-170141183460469231731687303715884105728". */
#define NUM_I128_MAXLEN 41

/* Parses a base-10 integer the way Python's int(text) does: surrounding ASCII whitespace
 * allowed, optional sign, digits with single underscores between them. Returns 0, or -1 if
 * the text is not an integer or does not fit in 128 bits. */
int num_parse_i128(const uint8_t *s, size_t len, i128 *out);
/* Writes the decimal form (no NUL) to out, which holds NUM_I128_MAXLEN bytes; returns its
 * length. */
size_t num_format_i128(i128 v, char *out);

#endif
