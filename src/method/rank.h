/*
 * rank: agreement of two rankings of the same items -- Spearman's rho
 * (the Pearson correlation of the average ranks, so ties share the mean
 * of the ranks they span) and Kendall's tau-b (concordant minus
 * discordant pairs over the square root of the product of the pairs not
 * tied in each), and the overlap of the k lowest items of each.  Used to
 * tell whether two calibrations (two datasets, two checkpoints) would
 * drop the same sites.
 *
 * Items are paired by index: a[i] and b[i] are the same item's scores in
 * the two rankings.  NaN entries are left out, with their pair.  Nothing
 * allocates more than O(n); Kendall is O(n^2), fine for a model's sites.
 */
#ifndef STRATA_RANK_H
#define STRATA_RANK_H

#include <stddef.h>

/*
 * Average ranks of v[0..n) into r[0..n): 1 for the smallest, ties get
 * the mean of the ranks they span (1, 2.5, 2.5, 4).  NaN entries get NaN
 * and are not counted.  Returns the number of non-NaN entries, or -1 when
 * out of memory.
 */
int rank_average(const double *v, size_t n, double *r);

/*
 * Spearman's rho of a and b (pairs with a NaN left out).  NaN when fewer
 * than 2 pairs remain or either side is constant (no variance).
 */
double rank_spearman(const double *a, const double *b, size_t n);

/*
 * Kendall's tau-b of a and b (pairs with a NaN left out): (C - D) /
 * sqrt((P - Ta) (P - Tb)) with P the pairs, Ta and Tb the pairs tied in
 * a and in b.  NaN when fewer than 2 pairs remain or a side is constant.
 */
double rank_kendall(const double *a, const double *b, size_t n);

/*
 * How many of the k items with the lowest a are also among the k with
 * the lowest b; ties are broken towards the higher index (the deeper
 * layer, as the store's ranks do).  NaN entries are never chosen.  k is
 * clipped to the number of non-NaN entries of each.  Returns the count,
 * or -1 when out of memory.
 */
int rank_overlap_lowest(const double *a, const double *b, size_t n, int k);

#endif
