/* replay.c: a main() for the fuzz targets without libFuzzer, so that every build (gcc too,
 * with or without sanitizers) runs each target once over its seed corpus and its regression
 * inputs (crash inputs that were found and fixed) as an ordinary test.
 *
 *   replay_TARGET DIR...   runs LLVMFuzzerTestOneInput on every file in each DIR (a missing
 *                          DIR counts as empty); exits 1 if a file cannot be read, 77 (skip)
 *                          if no DIR holds a file. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one file through the target. Returns 0, or -1 if it cannot be read. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	uint8_t *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *p = realloc(data, cap);
			if (p == NULL) {
				fprintf(stderr, "replay: out of memory reading %s\n", path);
				abort();
			}
			data = p;
		}
		size_t got = fread(data + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "replay: %s: read error\n", path);
		free(data);
		return -1;
	}
	/* A copy of exactly len bytes, so ASan sees reads past the input's end. */
	uint8_t *exact = malloc(len ? len : 1);
	if (exact == NULL)
		abort();
	if (len)
		memcpy(exact, data, len);
	free(data);
	(void)LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0, failed = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (d == NULL)
			continue;
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			char path[4096];
			struct stat st;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			files++;
			if (replay_file(path) < 0)
				failed = 1;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", files);
	if (files == 0)
		return 77;
	return failed;
}
