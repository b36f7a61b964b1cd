/* codec.h: Envelope <-> frame bytes, with the checks that make peer bytes safe to use.
 *
 * protobuf-c trusts its input length and can expand a small frame into a huge object graph,
 * so codec_unpack gives the unpacker a byte budget proportional to the frame and fails
 * cleanly when it is exceeded. codec_validate then checks the values each message kind may
 * carry (one validator per kind), so the daemons never act on nonsense. */
#ifndef SHOAL_CODEC_H
#define SHOAL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.pb-c.h"

#define SHOAL_PROTOCOL_VERSION 1u

/* Default unpack budget: bytes of decoded structures allowed per payload byte. Daemons keep
 * it tight (peers are untrusted); a client reading the master's listings, whose sparse
 * JobInfo records expand ~25x, uses CODEC_BUDGET_LISTINGS. */
#define CODEC_BUDGET_DEFAULT  16u
#define CODEC_BUDGET_LISTINGS 64u

/* Returns an owned envelope (free with codec_free) or NULL with a reason in err. Also fails
 * on an envelope that carries no known message kind. Decoding may allocate at most
 * budget_factor bytes per payload byte, plus 64 KiB. */
Shoal__Envelope *codec_unpack(const uint8_t *payload, size_t len, uint32_t budget_factor, char *err,
                              size_t errlen);
void codec_free(Shoal__Envelope *env);

/* 0 if the message is well formed, else -1 with the reason in err ("task_batch: task 3 has
 * attempt 0", ...). */
int codec_validate(const Shoal__Envelope *env, char *err, size_t errlen);

/* Name of the message kind ("hello", "task_batch", ...) for logs. */
const char *codec_kind_name(const Shoal__Envelope *env);

/* Bytes of the whole frame (header + payload). */
size_t codec_frame_size(const Shoal__Envelope *env);
/* Writes header and payload to out, which has codec_frame_size(env) bytes. */
void codec_pack_frame(const Shoal__Envelope *env, uint8_t *out);

#endif
