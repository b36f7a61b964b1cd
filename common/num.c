/* num.c: 128-bit decimal parsing and printing, with Python's int() and str() as the reference. */
#include "num.h"

#include <stdbool.h>
#include <string.h>

/* Python's int() strips str.isspace() characters; the ASCII ones are these six. */
static bool num_is_space(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool num_is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

int num_parse_i128(const uint8_t *s, size_t len, i128 *out)
{
	size_t i = 0, end = len;
	while (i < end && num_is_space(s[i]))
		i++;
	while (end > i && num_is_space(s[end - 1]))
		end--;

	bool neg = false;
	if (i < end && (s[i] == '+' || s[i] == '-')) {
		neg = s[i] == '-';
		i++;
	}
	/* At least one digit, first and last characters digits: this rules out "", "+", "_1"
	 * and "1_"; the loop below rules out "1__2". */
	if (i >= end || !num_is_digit(s[i]) || !num_is_digit(s[end - 1]))
		return -1;

	/* The magnitude may reach 2^127 (for INT128_MIN), which fits in u128. Most records are
	 * short, so accumulate in 64 bits while that cannot overflow (19 digits < 2^64). */
	const u128 limit = ((u128)1 << 127) - (neg ? 0 : 1);
	uint64_t small = 0;
	unsigned ndig = 0;
	u128 mag = 0;
	bool big = false;
	for (; i < end; i++) {
		uint8_t c = s[i];
		if (c == '_') {
			/* The first and last characters are digits, so only "__" can be wrong. */
			if (s[i + 1] == '_')
				return -1;
			continue;
		}
		if (!num_is_digit(c))
			return -1;
		unsigned d = (unsigned)(c - '0');
		if (!big) {
			if (ndig < 19) {
				small = small * 10 + d;
				if (small != 0)
					ndig++;
				continue;
			}
			big = true;
			mag = small;
		}
		/* mag * 10 + d <= limit, checked without overflowing u128. */
		if (mag > (limit - d) / 10)
			return -1;
		mag = mag * 10 + d;
	}
	if (!big)
		mag = small;

	/* Negate in unsigned arithmetic: -(2^127) has no positive i128 counterpart. */
	*out = neg ? (i128)(0 - mag) : (i128)mag;
	return 0;
}

static const char num_digits2[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* Writes the digits of v right-aligned so that they end just before `end`; returns the start. */
static char *num_u64_backwards(uint64_t v, char *end)
{
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);
		v /= 100;
		end -= 2;
		memcpy(end, num_digits2 + 2 * r, 2);
	}
	if (v >= 10) {
		end -= 2;
		memcpy(end, num_digits2 + 2 * v, 2);
	} else {
		*--end = (char)('0' + v);
	}
	return end;
}

size_t num_format_i128(i128 v, char *out)
{
	/* Work on the magnitude in u128: 0 - (u128)v is exact even for INT128_MIN. */
	u128 mag = v < 0 ? 0 - (u128)v : (u128)v;
	char tmp[NUM_I128_MAXLEN];
	char *end = tmp + sizeof(tmp);
	char *p;
	if (mag <= UINT64_MAX) {
		p = num_u64_backwards((uint64_t)mag, end);
	} else {
		/* Peel 19-digit groups (10^19 < 2^64) so that the divisions are few and the
		 * groups print with the fast 64-bit routine, zero-padded. */
		const uint64_t e19 = 10000000000000000000u;
		p = end;
		while (mag > UINT64_MAX) {
			uint64_t lo = (uint64_t)(mag % e19);
			mag /= e19;
			char *q = num_u64_backwards(lo, p);
			while (q > p - 19)
				*--q = '0';
			p = q;
		}
		p = num_u64_backwards((uint64_t)mag, p);
	}
	if (v < 0)
		*--p = '-';
	size_t n = (size_t)(end - p);
	memcpy(out, p, n);
	return n;
}
