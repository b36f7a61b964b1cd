/* fuzz_frame: the bytes a peer sends, through the frame decoder and the envelope codec.
 *
 * The input is a byte stream as read from a socket. It is fed to a struct frame_decoder in
 * chunks whose sizes derive from the input (alternately by frame_decoder_feed and by the
 * in-place frame_decoder_space/commit path conn.c uses); every complete frame is unpacked with
 * codec_unpack (the daemons' budget) and checked with codec_validate. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "frame.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Drains every ready frame; returns false once the stream is in error. */
static int drain(struct frame_decoder *d)
{
	for (;;) {
		const uint8_t *payload;
		uint32_t len;
		enum frame_status st = frame_decoder_next(d, &payload, &len);
		if (st == FRAME_NEED_MORE)
			return 1;
		if (st != FRAME_READY) {
			(void)frame_status_str(st);
			return 0;
		}
		char err[256];
		Shoal__Envelope *env = codec_unpack(payload, len, CODEC_BUDGET_DEFAULT, err, sizeof(err));
		if (env == NULL)
			continue;
		(void)codec_kind_name(env);
		if (codec_validate(env, err, sizeof(err)) == 0) {
			/* A valid envelope must pack back to a frame the decoder accepts. */
			size_t n = codec_frame_size(env);
			uint8_t *out = malloc(n);
			if (out == NULL)
				abort();
			codec_pack_frame(env, out);
			uint32_t plen;
			if (frame_parse(out, n, UINT32_MAX, &plen) != FRAME_READY ||
			    (size_t)plen + FRAME_HEADER_SIZE != n)
				abort();
			free(out);
		}
		codec_free(env);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t s = fuzz_hash(data, size);
	/* Mostly the daemons' default limit; sometimes a small one, to reach the size errors. */
	uint32_t max = (s & 7) == 0 ? 1u + (uint32_t)((s >> 3) % 256) : FRAME_DEFAULT_MAX;
	struct frame_decoder d;
	frame_decoder_init(&d, max);

	/* frame_parse on the raw bytes, too. */
	uint32_t plen;
	(void)frame_parse(data, size, max, &plen);

	size_t off = 0;
	while (off < size) {
		size_t n = fuzz_chunk(&s, size - off);
		if (fuzz_rand(&s) & 1) {
			frame_decoder_feed(&d, data + off, n);
			off += n;
		} else {
			uint8_t *p;
			size_t room;
			frame_decoder_space(&d, &p, &room);
			if (room == 0)
				abort(); /* the decoder must always offer room to a caller that drains */
			if (n > room)
				n = room;
			memcpy(p, data + off, n);
			frame_decoder_commit(&d, n);
			off += n;
		}
		if (!drain(&d))
			break;
	}
	frame_decoder_deinit(&d);
	return 0;
}
