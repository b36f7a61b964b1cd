/* knn_loop.c: the baseline of bench/knn, and its data generator. Depends on nothing of shoal.
 *
 *   knn_loop gen TRAIN.csv QUERIES.csv NTRAIN NQUERIES D SEED
 *       TRAIN.csv: a header f1,...,fD,label then NTRAIN rows of D features and a label;
 *       QUERIES.csv: NQUERIES rows of D features (no header, no label). Features are decimals
 *       with 3 places around 10 cluster centres in [0, 100)^D; a training row's label is its
 *       cluster. Deterministic for a given SEED (splitmix64).
 *   knn_loop run TRAIN.csv QUERIES.csv K
 *       The predicted label of each query, one per line on stdout, by a plain single-threaded
 *       brute-force loop; on stderr: parse_s=... loop_s=... (seconds).
 *
 * The prediction rule is shoal's knn (common/ops.c): the distance is the sum over j = 1..D, in
 * that order, of (q_j - t_j)^2 in double (no square root); the K nearest rows are kept, equal
 * distances going to the earlier training row; the vote picks the most frequent label among
 * them, and on a tie the tied label whose nearest member comes first. Numbers are parsed with
 * strtod (correctly rounded, as shoal's parser), so both see the same doubles and must predict
 * the same labels. Build with -ffp-contract=off so that a*a+s stays two roundings. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "knn_loop: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- gen ---- */

static uint64_t sm_state;

static uint64_t splitmix64(void)
{
	uint64_t z = (sm_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double unif(void)
{
	return (double)(splitmix64() >> 11) / 9007199254740992.0;
}

#define NCLUSTERS 10

static void gen_row(FILE *f, size_t d, const double *centres, int c)
{
	for (size_t j = 0; j < d; j++) {
		/* about normal: the sum of three uniforms, spread +-12 */
		double v = centres[(size_t)c * d + j] + 8.0 * (unif() + unif() + unif() - 1.5);
		fprintf(f, j == 0 ? "%.3f" : ",%.3f", v);
	}
}

static int gen(const char *train_path, const char *query_path, size_t ntrain, size_t nquery,
               size_t d, uint64_t seed)
{
	sm_state = seed;
	double *centres = malloc(NCLUSTERS * d * sizeof(*centres));
	if (centres == NULL)
		die("%s", "out of memory");
	for (size_t i = 0; i < NCLUSTERS * d; i++)
		centres[i] = 100.0 * unif();
	FILE *t = fopen(train_path, "w");
	FILE *q = fopen(query_path, "w");
	if (t == NULL || q == NULL)
		die("cannot write %s", t == NULL ? train_path : query_path);
	for (size_t j = 0; j < d; j++)
		fprintf(t, "f%zu,", j + 1);
	fprintf(t, "label\n");
	for (size_t i = 0; i < ntrain; i++) {
		int c = (int)(splitmix64() % NCLUSTERS);
		gen_row(t, d, centres, c);
		fprintf(t, ",c%d\n", c);
	}
	for (size_t i = 0; i < nquery; i++) {
		gen_row(q, d, centres, (int)(splitmix64() % NCLUSTERS));
		fputc('\n', q);
	}
	if (fclose(t) != 0 || fclose(q) != 0)
		die("%s", "write failed");
	free(centres);
	return 0;
}

/* ---- run ---- */

struct table {
	size_t n, d, cap;
	double *x;      /* row-major: row i at x[i*d] */
	char **labels;  /* training rows: the label text */
};

/* Reads CSV rows of d features (and a label if labeled). d == 0: taken from the first row.
 * A first line whose first field is not a number is a header. */
static void load(const char *path, struct table *tb, int labeled)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		die("cannot read %s", path);
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		char *end;
		errno = 0;
		double first = strtod(line, &end);
		(void)first;
		if (lineno == 1 && (end == line || (*end != ',' && *end != '\0')))
			continue; /* header */
		size_t nf = 1;
		for (char *p = line; *p; p++)
			nf += *p == ',';
		size_t d = labeled ? nf - 1 : nf;
		if (tb->d == 0)
			tb->d = d;
		if (d != tb->d)
			die("%s: a row with another number of fields", path);
		if (tb->n == tb->cap) {
			tb->cap = tb->cap ? 2 * tb->cap : 1024;
			tb->x = realloc(tb->x, tb->cap * tb->d * sizeof(*tb->x));
			tb->labels = realloc(tb->labels, tb->cap * sizeof(*tb->labels));
			if (tb->x == NULL || tb->labels == NULL)
				die("%s", "out of memory");
		}
		char *p = line;
		for (size_t j = 0; j < tb->d; j++) {
			tb->x[tb->n * tb->d + j] = strtod(p, &end);
			if (end == p)
				die("%s: a field is not a number", path);
			p = *end == ',' ? end + 1 : end;
		}
		tb->labels[tb->n] = labeled ? strdup(p) : NULL;
		tb->n++;
	}
	free(line);
	fclose(f);
}

#define KMAX 64

static int run(const char *train_path, const char *query_path, size_t k)
{
	if (k < 1 || k > KMAX)
		die("%s", "k must be 1..64");
	double t0 = now_s();
	struct table tr = {0}, qs = {0};
	load(train_path, &tr, 1);
	qs.d = tr.d;
	load(query_path, &qs, 0);
	/* Label ids, so that votes count small integers. */
	size_t nlab = 0;
	char **names = malloc(tr.n * sizeof(*names));
	uint32_t *lab = malloc(tr.n * sizeof(*lab));
	if (names == NULL || lab == NULL)
		die("%s", "out of memory");
	for (size_t i = 0; i < tr.n; i++) {
		size_t l = 0;
		while (l < nlab && strcmp(names[l], tr.labels[i]) != 0)
			l++;
		if (l == nlab)
			names[nlab++] = tr.labels[i];
		lab[i] = (uint32_t)l;
	}
	if (k > tr.n)
		k = tr.n;
	uint32_t *votes = calloc(nlab, sizeof(*votes));
	uint32_t *pred = malloc((qs.n ? qs.n : 1) * sizeof(*pred));
	if (votes == NULL || pred == NULL)
		die("%s", "out of memory");
	double t1 = now_s();

	const size_t d = tr.d;
	for (size_t q = 0; q < qs.n; q++) {
		const double *x = qs.x + q * d;
		double bd[KMAX];   /* the k best distances, increasing */
		uint32_t bi[KMAX]; /* their rows */
		size_t nb = 0;
		for (size_t i = 0; i < tr.n; i++) {
			const double *t = tr.x + i * d;
			double s = 0.0;
			for (size_t j = 0; j < d; j++) {
				double e = x[j] - t[j];
				s += e * e;
			}
			if (nb == k && s >= bd[k - 1])
				continue; /* not nearer than the k-th (equal: the earlier row stays) */
			size_t p = nb < k ? nb++ : k - 1;
			while (p > 0 && bd[p - 1] > s) {
				bd[p] = bd[p - 1];
				bi[p] = bi[p - 1];
				p--;
			}
			bd[p] = s;
			bi[p] = (uint32_t)i;
		}
		/* majority; a tie goes to the label met first in order of distance */
		uint32_t best = 0, bestv = 0;
		for (size_t r = 0; r < nb; r++)
			votes[lab[bi[r]]]++;
		for (size_t r = 0; r < nb; r++) {
			uint32_t l = lab[bi[r]];
			if (votes[l] > bestv) {
				bestv = votes[l];
				best = l;
			}
		}
		for (size_t r = 0; r < nb; r++)
			votes[lab[bi[r]]] = 0;
		pred[q] = best;
	}
	double t2 = now_s();
	for (size_t q = 0; q < qs.n; q++)
		printf("%s\n", names[pred[q]]);
	if (fflush(stdout) != 0)
		die("%s", "cannot write the predictions");
	fprintf(stderr, "parse_s=%.3f loop_s=%.3f train=%zu queries=%zu d=%zu k=%zu\n", t1 - t0,
	        t2 - t1, tr.n, qs.n, d, k);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "gen") == 0)
		return gen(argv[2], argv[3], strtoul(argv[4], NULL, 10), strtoul(argv[5], NULL, 10),
		           strtoul(argv[6], NULL, 10), strtoull(argv[7], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "run") == 0)
		return run(argv[2], argv[3], strtoul(argv[4], NULL, 10));
	fprintf(stderr, "usage: knn_loop gen TRAIN QUERIES NTRAIN NQUERIES D SEED\n"
	                "       knn_loop run TRAIN QUERIES K\n");
	return 2;
}
