/* Unit tests for frame.c: the pure parser and the stream assembler, without sockets. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"

/* Appends one frame whose payload is `n` bytes of (seed + i). */
static void test_frame_make(struct buf *out, uint32_t n, uint8_t seed)
{
	uint8_t h[FRAME_HEADER_SIZE];
	frame_put_header(h, n);
	buf_append(out, h, sizeof(h));
	for (uint32_t i = 0; i < n; i++)
		buf_append_byte(out, (uint8_t)(seed + i));
}

static void test_frame_check_payload(const uint8_t *p, uint32_t len, uint32_t want_len,
                                     uint8_t seed)
{
	ck_assert_uint_eq(len, want_len);
	/* One assertion per frame, not per byte: Check's assertions are slow in bulk. */
	uint32_t bad = len;
	for (uint32_t i = 0; i < len && bad == len; i++) {
		if (p[i] != (uint8_t)(seed + i))
			bad = i;
	}
	ck_assert_msg(bad == len, "payload byte %u differs", bad);
}

START_TEST(test_frame_header_be)
{
	uint8_t h[4];
	frame_put_header(h, 0x01020304u);
	ck_assert_uint_eq(h[0], 1);
	ck_assert_uint_eq(h[1], 2);
	ck_assert_uint_eq(h[2], 3);
	ck_assert_uint_eq(h[3], 4);
}
END_TEST

START_TEST(test_frame_parse_round_trip)
{
	struct buf b = BUF_INIT;
	test_frame_make(&b, 5, 'a');
	uint32_t n = 0;
	ck_assert_int_eq(frame_parse(b.data, b.len, 100, &n), FRAME_READY);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(b.data + FRAME_HEADER_SIZE, "abcde", 5);
	/* Trailing bytes of a following frame do not matter. */
	buf_append(&b, "xyz", 3);
	ck_assert_int_eq(frame_parse(b.data, b.len, 100, &n), FRAME_READY);
	ck_assert_uint_eq(n, 5);
	/* Payload exactly at the maximum is fine. */
	ck_assert_int_eq(frame_parse(b.data, b.len, 5, &n), FRAME_READY);
	buf_free(&b);
}
END_TEST

START_TEST(test_frame_parse_need_more)
{
	struct buf b = BUF_INIT;
	test_frame_make(&b, 10, 0);
	uint32_t n = 12345;
	for (size_t len = 0; len < FRAME_HEADER_SIZE; len++) {
		ck_assert_int_eq(frame_parse(b.data, len, 100, &n), FRAME_NEED_MORE);
		ck_assert_uint_eq(n, 12345); /* not known yet */
	}
	for (size_t len = FRAME_HEADER_SIZE; len < b.len; len++) {
		n = 0;
		ck_assert_int_eq(frame_parse(b.data, len, 100, &n), FRAME_NEED_MORE);
		ck_assert_uint_eq(n, 10); /* known from the header */
	}
	ck_assert_int_eq(frame_parse(b.data, b.len, 100, &n), FRAME_READY);
	buf_free(&b);
}
END_TEST

START_TEST(test_frame_parse_errors)
{
	uint8_t h[FRAME_HEADER_SIZE];
	uint32_t n;
	frame_put_header(h, 0);
	ck_assert_int_eq(frame_parse(h, sizeof(h), 100, &n), FRAME_ERR_EMPTY);
	frame_put_header(h, 101);
	ck_assert_int_eq(frame_parse(h, sizeof(h), 100, &n), FRAME_ERR_TOO_LARGE);
	ck_assert_uint_eq(n, 101);
	frame_put_header(h, 100);
	ck_assert_int_eq(frame_parse(h, sizeof(h), 100, &n), FRAME_NEED_MORE);
	frame_put_header(h, 0xFFFFFFFFu);
	ck_assert_int_eq(frame_parse(h, sizeof(h), FRAME_DEFAULT_MAX, &n), FRAME_ERR_TOO_LARGE);
	ck_assert_uint_eq(n, 0xFFFFFFFFu);
	frame_put_header(h, FRAME_DEFAULT_MAX + 1);
	ck_assert_int_eq(frame_parse(h, sizeof(h), FRAME_DEFAULT_MAX, &n), FRAME_ERR_TOO_LARGE);
}
END_TEST

START_TEST(test_frame_status_str)
{
	const enum frame_status all[] = {FRAME_NEED_MORE, FRAME_READY, FRAME_ERR_EMPTY,
	                                 FRAME_ERR_TOO_LARGE};
	for (size_t i = 0; i < 4; i++) {
		ck_assert_ptr_nonnull(frame_status_str(all[i]));
		ck_assert_uint_gt(strlen(frame_status_str(all[i])), 3);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(frame_status_str(all[i]), frame_status_str(all[j]));
	}
	ck_assert_ptr_nonnull(strstr(frame_status_str(FRAME_ERR_EMPTY), "0"));
	ck_assert_ptr_nonnull(strstr(frame_status_str(FRAME_ERR_TOO_LARGE), "maximum"));
	ck_assert_ptr_nonnull(frame_status_str((enum frame_status)77));
}
END_TEST

START_TEST(test_decoder_byte_by_byte)
{
	struct buf b = BUF_INIT;
	test_frame_make(&b, 1, 10);
	test_frame_make(&b, 300, 20);
	test_frame_make(&b, 7, 30);
	struct frame_decoder d;
	frame_decoder_init(&d, 1000);
	const uint8_t *p;
	uint32_t len;
	int got = 0;
	const uint32_t lens[] = {1, 300, 7};
	const uint8_t seeds[] = {10, 20, 30};
	for (size_t i = 0; i < b.len; i++) {
		frame_decoder_feed(&d, b.data + i, 1);
		enum frame_status st;
		while ((st = frame_decoder_next(&d, &p, &len)) == FRAME_READY) {
			ck_assert_int_lt(got, 3);
			test_frame_check_payload(p, len, lens[got], seeds[got]);
			got++;
		}
		ck_assert_int_eq(st, FRAME_NEED_MORE);
	}
	ck_assert_int_eq(got, 3);
	frame_decoder_deinit(&d);
	buf_free(&b);
}
END_TEST

START_TEST(test_decoder_several_in_one_feed)
{
	struct buf b = BUF_INIT;
	for (int i = 0; i < 50; i++)
		test_frame_make(&b, (uint32_t)(i + 1), (uint8_t)i);
	/* Plus half of a 51st frame. */
	test_frame_make(&b, 100, 0);
	struct frame_decoder d;
	frame_decoder_init(&d, 1000);
	frame_decoder_feed(&d, b.data, b.len - 50);
	const uint8_t *p;
	uint32_t len;
	for (int i = 0; i < 50; i++) {
		ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_READY);
		test_frame_check_payload(p, len, (uint32_t)(i + 1), (uint8_t)i);
	}
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_NEED_MORE);
	ck_assert_uint_eq(d.claimed, 100);
	frame_decoder_feed(&d, b.data + b.len - 50, 50);
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_READY);
	test_frame_check_payload(p, len, 100, 0);
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_NEED_MORE);
	frame_decoder_deinit(&d);
	buf_free(&b);
}
END_TEST

START_TEST(test_decoder_zero_length)
{
	struct frame_decoder d;
	frame_decoder_init(&d, 1000);
	const uint8_t bytes[] = {0, 0, 0, 0, 1, 2, 3};
	frame_decoder_feed(&d, bytes, sizeof(bytes));
	const uint8_t *p;
	uint32_t len;
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_ERR_EMPTY);
	/* The error sticks: the stream is unusable. */
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_ERR_EMPTY);
	frame_decoder_deinit(&d);
}
END_TEST

START_TEST(test_decoder_max_plus_one)
{
	struct frame_decoder d;
	frame_decoder_init(&d, 1000);
	uint8_t h[FRAME_HEADER_SIZE];
	frame_put_header(h, 1001);
	/* The first three header bytes are not enough to judge. */
	frame_decoder_feed(&d, h, 3);
	const uint8_t *p;
	uint32_t len;
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_NEED_MORE);
	frame_decoder_feed(&d, h + 3, 1);
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_ERR_TOO_LARGE);
	ck_assert_uint_eq(d.claimed, 1001);
	frame_decoder_deinit(&d);
}
END_TEST

START_TEST(test_decoder_4gib_claim)
{
	struct frame_decoder d;
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	uint8_t *p;
	size_t n;
	frame_decoder_space(&d, &p, &n);
	ck_assert_uint_ge(n, FRAME_HEADER_SIZE);
	memset(p, 0xFF, FRAME_HEADER_SIZE);
	frame_decoder_commit(&d, FRAME_HEADER_SIZE);
	const uint8_t *payload;
	uint32_t len;
	ck_assert_int_eq(frame_decoder_next(&d, &payload, &len), FRAME_ERR_TOO_LARGE);
	ck_assert_uint_eq(d.claimed, 0xFFFFFFFFu);
	ck_assert_uint_le(d.cap, 64 * 1024);
	frame_decoder_deinit(&d);
}
END_TEST

START_TEST(test_decoder_60mib_claim_10_bytes)
{
	/* Via space/commit (how conn reads) ... */
	struct frame_decoder d;
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	uint8_t msg[10] = {0};
	frame_put_header(msg, 60u << 20);
	uint8_t *p;
	size_t n;
	frame_decoder_space(&d, &p, &n);
	ck_assert_uint_ge(n, sizeof(msg));
	memcpy(p, msg, sizeof(msg));
	frame_decoder_commit(&d, sizeof(msg));
	const uint8_t *payload;
	uint32_t len;
	ck_assert_int_eq(frame_decoder_next(&d, &payload, &len), FRAME_NEED_MORE);
	ck_assert_uint_eq(d.claimed, 60u << 20);
	/* Asking for more space again must not allocate the claimed size either. */
	frame_decoder_space(&d, &p, &n);
	ck_assert_uint_le(d.cap, 128 * 1024);
	frame_decoder_deinit(&d);

	/* ... and via feed. */
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	frame_decoder_feed(&d, msg, sizeof(msg));
	ck_assert_int_eq(frame_decoder_next(&d, &payload, &len), FRAME_NEED_MORE);
	frame_decoder_space(&d, &p, &n);
	ck_assert_uint_le(d.cap, 128 * 1024);
	frame_decoder_deinit(&d);
}
END_TEST

START_TEST(test_decoder_big_frame_grows_with_data)
{
	/* A 3 MiB frame read in 64 KiB pieces: the buffer never exceeds twice what arrived,
	 * and shrinks back once the frame is consumed. */
	const uint32_t size = 3u << 20;
	struct buf b = BUF_INIT;
	test_frame_make(&b, size, 7);
	struct frame_decoder d;
	frame_decoder_init(&d, FRAME_DEFAULT_MAX);
	size_t off = 0;
	const uint8_t *payload = NULL;
	uint32_t len = 0;
	enum frame_status st = FRAME_NEED_MORE;
	while (off < b.len) {
		uint8_t *p;
		size_t n;
		frame_decoder_space(&d, &p, &n);
		ck_assert_uint_gt(n, 0);
		if (n > 65536)
			n = 65536;
		if (n > b.len - off)
			n = b.len - off;
		memcpy(p, b.data + off, n);
		frame_decoder_commit(&d, n);
		off += n;
		ck_assert_uint_le(d.cap, 2 * off + 65536);
		st = frame_decoder_next(&d, &payload, &len);
		if (st != FRAME_NEED_MORE)
			break;
	}
	ck_assert_int_eq(st, FRAME_READY);
	ck_assert_uint_eq(off, b.len);
	test_frame_check_payload(payload, len, size, 7);
	ck_assert_uint_le(d.cap, (size_t)FRAME_HEADER_SIZE + size);
	uint8_t *p;
	size_t n;
	frame_decoder_space(&d, &p, &n);
	ck_assert_uint_le(d.cap, 64 * 1024);
	frame_decoder_deinit(&d);
	buf_free(&b);
}
END_TEST

START_TEST(test_decoder_stream_random_chunks)
{
	/* Many frames of mixed sizes cut at pseudo-random points; small frames must keep the
	 * buffer at one read chunk thanks to lazy compaction. */
	struct buf b = BUF_INIT;
	const int count = 5000;
	for (int i = 0; i < count; i++)
		test_frame_make(&b, (uint32_t)(1 + (i * 37) % 200), (uint8_t)i);
	struct frame_decoder d;
	frame_decoder_init(&d, 1000);
	size_t off = 0;
	int got = 0;
	unsigned rnd = 12345;
	while (off < b.len) {
		uint8_t *p;
		size_t n;
		frame_decoder_space(&d, &p, &n);
		rnd = rnd * 1103515245u + 12345u;
		size_t want = 1 + (rnd >> 8) % 3000;
		if (want > n)
			want = n;
		if (want > b.len - off)
			want = b.len - off;
		memcpy(p, b.data + off, want);
		frame_decoder_commit(&d, want);
		off += want;
		const uint8_t *payload;
		uint32_t len;
		while (frame_decoder_next(&d, &payload, &len) == FRAME_READY) {
			test_frame_check_payload(payload, len, (uint32_t)(1 + (got * 37) % 200),
			                         (uint8_t)got);
			got++;
		}
		ck_assert_uint_le(d.cap, 64 * 1024);
	}
	ck_assert_int_eq(got, count);
	frame_decoder_deinit(&d);
	buf_free(&b);
}
END_TEST

START_TEST(test_decoder_small_max)
{
	/* A tiny limit still reads in normal chunks and enforces the limit. */
	struct frame_decoder d;
	frame_decoder_init(&d, 8);
	struct buf b = BUF_INIT;
	test_frame_make(&b, 8, 1);
	test_frame_make(&b, 9, 1);
	frame_decoder_feed(&d, b.data, b.len);
	const uint8_t *p;
	uint32_t len;
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_READY);
	test_frame_check_payload(p, len, 8, 1);
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_ERR_TOO_LARGE);
	frame_decoder_deinit(&d);
	buf_free(&b);
}
END_TEST

START_TEST(test_decoder_empty)
{
	struct frame_decoder d;
	frame_decoder_init(&d, 100);
	const uint8_t *p;
	uint32_t len;
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_NEED_MORE);
	frame_decoder_feed(&d, NULL, 0);
	ck_assert_int_eq(frame_decoder_next(&d, &p, &len), FRAME_NEED_MORE);
	ck_assert_uint_eq(d.cap, 0); /* an idle decoder holds no buffer */
	frame_decoder_deinit(&d);
	frame_decoder_deinit(&d);
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, test_frame_header_be);
	tcase_add_test(tc, test_frame_parse_round_trip);
	tcase_add_test(tc, test_frame_parse_need_more);
	tcase_add_test(tc, test_frame_parse_errors);
	tcase_add_test(tc, test_frame_status_str);
	suite_add_tcase(s, tc);
	tc = tcase_create("decoder");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_decoder_byte_by_byte);
	tcase_add_test(tc, test_decoder_several_in_one_feed);
	tcase_add_test(tc, test_decoder_zero_length);
	tcase_add_test(tc, test_decoder_max_plus_one);
	tcase_add_test(tc, test_decoder_4gib_claim);
	tcase_add_test(tc, test_decoder_60mib_claim_10_bytes);
	tcase_add_test(tc, test_decoder_big_frame_grows_with_data);
	tcase_add_test(tc, test_decoder_stream_random_chunks);
	tcase_add_test(tc, test_decoder_small_max);
	tcase_add_test(tc, test_decoder_empty);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
