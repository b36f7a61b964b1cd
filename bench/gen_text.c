/* gen_text: writes SIZE bytes of text for the count/wordcount benchmarks.
 *
 * Lines of about 60 bytes (words joined by single spaces, newline-terminated), words drawn from
 * a fixed vocabulary of 64 English words by a seeded xorshift generator, so the file is the same
 * on every run. The last line is cut to make the file exactly SIZE bytes (it still ends with a
 * newline). Written in 4 MiB blocks.
 *
 * Usage: gen_text SIZE_BYTES FILE */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const vocab[] = {
	"the",     "of",     "and",    "to",      "in",     "a",       "is",     "that",
	"for",     "it",     "as",     "was",     "with",   "be",      "by",     "on",
	"not",     "he",     "this",   "are",     "or",     "his",     "from",   "at",
	"which",   "but",    "have",   "an",      "had",    "they",    "you",    "were",
	"cluster", "worker", "master", "task",    "shoal",  "record",  "split",  "merge",
	"queue",   "slot",   "result", "batch",   "frame",  "socket",  "thread", "partition",
	"alpha",   "beta",   "gamma",  "delta",   "river",  "stone",   "forest", "mountain",
	"quickly", "slowly", "bright", "darkness", "silver", "harbour", "lantern", "whisper",
};
#define NVOCAB (sizeof vocab / sizeof vocab[0])
#define BLOCK (4u << 20)
#define LINE_TARGET 60

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: gen_text SIZE_BYTES FILE\n");
		return 2;
	}
	char *end;
	errno = 0;
	unsigned long long size = strtoull(argv[1], &end, 10);
	if (errno || end == argv[1] || *end || size < 2) {
		fprintf(stderr, "gen_text: bad size: %s\n", argv[1]);
		return 2;
	}
	FILE *f = fopen(argv[2], "wb");
	if (!f) {
		fprintf(stderr, "gen_text: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	size_t vlen[NVOCAB];
	for (size_t i = 0; i < NVOCAB; i++)
		vlen[i] = strlen(vocab[i]);

	char *buf = malloc(BLOCK + 256);
	if (!buf)
		return 1;
	unsigned long long written = 0;
	while (written < size) {
		size_t len = 0;
		/* Whole lines into the block; each line is < 80 bytes. */
		while (len < BLOCK) {
			size_t line = 0;
			for (;;) {
				size_t w = (size_t)(next_rand() % NVOCAB);
				if (line)
					buf[len + line++] = ' ';
				memcpy(buf + len + line, vocab[w], vlen[w]);
				line += vlen[w];
				if (line >= LINE_TARGET - 6)
					break;
			}
			buf[len + line++] = '\n';
			len += line;
		}
		if (written + len >= size) {
			len = (size_t)(size - written);
			buf[len - 1] = '\n';
		}
		if (fwrite(buf, 1, len, f) != len) {
			fprintf(stderr, "gen_text: %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		written += len;
	}
	free(buf);
	if (fclose(f) != 0) {
		fprintf(stderr, "gen_text: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	return 0;
}
