/* test_args.h: shared by unit tests that call ops or plugins with --arg pairs. */
#ifndef SHOAL_TEST_ARGS_H
#define SHOAL_TEST_ARGS_H

#include <stdarg.h>
#include <stddef.h>

#include "shoal.pb-c.h"

#define TEST_ARGS_MAX 32

static Shoal__Arg test_arg_storage[TEST_ARGS_MAX];
static Shoal__Arg *test_arg_ptrs[TEST_ARGS_MAX];

/* Builds an args array from key, value pairs ended by ARGS_END (a typed NULL: an untyped one
 * passed through "..." may not be a pointer). The array is reused by the next call. */
#define ARGS_END ((const char *)NULL)
static Shoal__Arg **make_args(size_t *n, ...)
{
	va_list ap;
	va_start(ap, n);
	*n = 0;
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (k == NULL || *n == TEST_ARGS_MAX)
			break;
		const char *v = va_arg(ap, const char *);
		Shoal__Arg a = SHOAL__ARG__INIT;
		a.key = (char *)k;
		a.value = (char *)v;
		test_arg_storage[*n] = a;
		test_arg_ptrs[*n] = &test_arg_storage[*n];
		(*n)++;
	}
	va_end(ap);
	return test_arg_ptrs;
}

#endif
