/*
 * sample: next-token choice (see sample.h).  Temperature sampling draws
 * from softmax(logits / temp) restricted to the nucleus: tokens sorted
 * by probability, the smallest prefix whose mass reaches top_p.  The
 * generator is xorshift64*, so a seed reproduces a sequence exactly.
 */
#include "measure/sample.h"

#include <math.h>
#include <stdlib.h>

int sample_argmax(const float *logits, int n)
{
	int i, best = 0;

	for (i = 1; i < n; i++)
		if (logits[i] > logits[best])
			best = i;
	return best;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* uniform in [0, 1) */
static double rand01(uint64_t *s)
{
	return (double)(xorshift(s) >> 11) / 9007199254740992.0;
}

struct cand {
	double p;
	int id;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->p != y->p)
		return x->p < y->p ? 1 : -1;
	return x->id - y->id;
}

int sample_next(const float *logits, int n, float temp, float top_p, uint64_t *rng)
{
	struct cand *c;
	double mx, sum = 0, r, acc = 0;
	int i, k, pick;

	if (temp <= 0 || n <= 1)
		return sample_argmax(logits, n);
	mx = logits[sample_argmax(logits, n)];
	c = malloc((size_t)n * sizeof *c);
	if (!c) /* no room to sort: greedy is the safe answer */
		return sample_argmax(logits, n);
	for (i = 0; i < n; i++) {
		c[i].p = exp(((double)logits[i] - mx) / temp);
		c[i].id = i;
		sum += c[i].p;
	}
	k = n;
	if (top_p > 0 && top_p < 1) {
		qsort(c, (size_t)n, sizeof *c, cand_cmp);
		for (k = 0; k < n; k++) {
			acc += c[k].p / sum;
			if (acc >= top_p) {
				k++;
				break;
			}
		}
		if (k > n)
			k = n;
		sum = 0;
		for (i = 0; i < k; i++)
			sum += c[i].p;
	}
	r = rand01(rng) * sum;
	pick = c[k - 1].id;
	acc = 0;
	for (i = 0; i < k; i++) {
		acc += c[i].p;
		if (r < acc) {
			pick = c[i].id;
			break;
		}
	}
	free(c);
	return pick;
}
