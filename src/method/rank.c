/*
 * rank: Spearman's rho with average ranks, Kendall's tau-b with ties,
 * and the overlap of two "k lowest" sets.  See rank.h.
 */
#include "method/rank.h"

#include <math.h>
#include <stdlib.h>

struct ix {
	double v;
	size_t i;
};

/* ascending value; equal values by descending index (deeper first) */
static int ix_cmp(const void *pa, const void *pb)
{
	const struct ix *a = pa, *b = pb;

	if (a->v < b->v)
		return -1;
	if (a->v > b->v)
		return 1;
	return a->i < b->i ? 1 : a->i > b->i ? -1 : 0;
}

/* The non-NaN entries of v sorted by ix_cmp into a new array; *m gets
 * their count.  NULL when out of memory. */
static struct ix *sorted(const double *v, size_t n, size_t *m)
{
	struct ix *x = malloc((n ? n : 1) * sizeof *x);

	*m = 0;
	if (!x)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			x[(*m)++] = (struct ix){v[i], i};
	qsort(x, *m, sizeof *x, ix_cmp);
	return x;
}

int rank_average(const double *v, size_t n, double *r)
{
	size_t m;
	struct ix *x = sorted(v, n, &m);

	if (!x)
		return -1;
	for (size_t i = 0; i < n; i++)
		r[i] = NAN;
	for (size_t i = 0; i < m;) {
		size_t j = i;

		while (j + 1 < m && x[j + 1].v == x[i].v)
			j++;
		/* positions i..j (0-based) share ranks i+1 .. j+1 */
		for (size_t t = i; t <= j; t++)
			r[x[t].i] = (double)(i + j + 2) / 2.0;
		i = j + 1;
	}
	free(x);
	return (int)m;
}

double rank_spearman(const double *a, const double *b, size_t n)
{
	double *pa = malloc((n ? n : 1) * sizeof *pa);
	double *pb = malloc((n ? n : 1) * sizeof *pb);
	double *ra = malloc((n ? n : 1) * sizeof *ra);
	double *rb = malloc((n ? n : 1) * sizeof *rb);
	double rho = NAN;
	size_t m = 0;

	if (!pa || !pb || !ra || !rb)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!isnan(a[i]) && !isnan(b[i])) {
			pa[m] = a[i];
			pb[m] = b[i];
			m++;
		}
	if (m < 2 || rank_average(pa, m, ra) < 0 || rank_average(pb, m, rb) < 0)
		goto out;
	{
		double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;

		for (size_t i = 0; i < m; i++) {
			ma += ra[i];
			mb += rb[i];
		}
		ma /= (double)m;
		mb /= (double)m;
		for (size_t i = 0; i < m; i++) {
			sab += (ra[i] - ma) * (rb[i] - mb);
			saa += (ra[i] - ma) * (ra[i] - ma);
			sbb += (rb[i] - mb) * (rb[i] - mb);
		}
		if (saa > 0 && sbb > 0)
			rho = sab / sqrt(saa * sbb);
	}
out:
	free(pa);
	free(pb);
	free(ra);
	free(rb);
	return rho;
}

static int sign(double d)
{
	return d > 0 ? 1 : d < 0 ? -1 : 0;
}

double rank_kendall(const double *a, const double *b, size_t n)
{
	double conc = 0, disc = 0, ta = 0, tb = 0, pairs = 0;

	for (size_t i = 0; i < n; i++) {
		if (isnan(a[i]) || isnan(b[i]))
			continue;
		for (size_t j = i + 1; j < n; j++) {
			int sa, sb;

			if (isnan(a[j]) || isnan(b[j]))
				continue;
			sa = sign(a[i] - a[j]);
			sb = sign(b[i] - b[j]);
			pairs++;
			if (!sa)
				ta++;
			if (!sb)
				tb++;
			if (sa && sb) {
				if (sa == sb)
					conc++;
				else
					disc++;
			}
		}
	}
	if (pairs < 1 || pairs - ta <= 0 || pairs - tb <= 0)
		return NAN;
	return (conc - disc) / sqrt((pairs - ta) * (pairs - tb));
}

int rank_overlap_lowest(const double *a, const double *b, size_t n, int k)
{
	size_t ma, mb, ka, kb;
	struct ix *xa = sorted(a, n, &ma), *xb = sorted(b, n, &mb);
	unsigned char *in = calloc(n ? n : 1, 1);
	int common = -1;

	if (!xa || !xb || !in)
		goto out;
	ka = k < 0 ? 0 : (size_t)k < ma ? (size_t)k : ma;
	kb = k < 0 ? 0 : (size_t)k < mb ? (size_t)k : mb;
	for (size_t i = 0; i < ka; i++)
		in[xa[i].i] = 1;
	common = 0;
	for (size_t i = 0; i < kb; i++)
		common += in[xb[i].i];
out:
	free(xa);
	free(xb);
	free(in);
	return common;
}
