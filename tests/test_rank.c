/*
 * test_rank: average ranks, Spearman's rho, Kendall's tau-b and the
 * overlap of the k lowest, each against values worked out by hand (the
 * arithmetic is in the comments), with ties, NaN pairs and constant
 * sides.
 */
#include <math.h>

#include "method/rank.h"
#include "tap.h"

int main(void)
{
	/* ranks: 1 and 1 share ranks 1 and 2 -> 1.5 each */
	{
		const double v[] = {3, 1, 4, 1, 5};
		const double want[] = {3, 1.5, 4, 1.5, 5};
		double r[5];
		int bad = 0;

		is_int(rank_average(v, 5, r), 5, "rank_average counts 5 values");
		for (int i = 0; i < 5; i++)
			bad += r[i] != want[i];
		is_int(bad, 0, "ranks of {3,1,4,1,5} are {3,1.5,4,1.5,5}");
	}
	{
		const double v[] = {2, NAN, 1};
		double r[3];

		is_int(rank_average(v, 3, r), 2, "a NaN is not counted");
		ok(r[0] == 2 && isnan(r[1]) && r[2] == 1, "... and gets a NaN rank");
	}

	/* no ties: d = (-1, 1, -1, 1, 0), sum d^2 = 4, rho = 1 - 6*4/(5*24) = 0.8;
	 * pairs (1,2) and (3,4) discordant of 10: tau = (8 - 2) / 10 = 0.6 */
	{
		const double a[] = {1, 2, 3, 4, 5}, b[] = {2, 1, 4, 3, 5};

		is_close(rank_spearman(a, b, 5), 0.8, 1e-12, "Spearman without ties = 0.8");
		is_close(rank_kendall(a, b, 5), 0.6, 1e-12, "Kendall without ties = 0.6");
	}
	/* ties on both sides: a = {1,2,2,3}, b = {1,2,3,3}
	 * ranks a = {1,2.5,2.5,4}, b = {1,2,3.5,3.5}, both mean 2.5;
	 * sab = 2.25 + 0 + 0 + 1.5 = 3.75, saa = sbb = 4.5: rho = 3.75/4.5
	 * pairs: C = 4 ((0,1),(0,2),(0,3),(1,3)), D = 0, tied in a: (1,2),
	 * tied in b: (2,3), P = 6: tau-b = 4 / sqrt(5 * 5) = 0.8 */
	{
		const double a[] = {1, 2, 2, 3}, b[] = {1, 2, 3, 3};

		is_close(rank_spearman(a, b, 4), 3.75 / 4.5, 1e-12, "Spearman with ties = 0.8333 (average ranks)");
		is_close(rank_kendall(a, b, 4), 0.8, 1e-12, "Kendall tau-b with ties = 0.8");
	}
	/* one discordant and one tie: a = {1,2,3}, b = {2,1,1}
	 * ranks b = {3,1.5,1.5}; dev a = (-1,0,1), dev b = (1,-.5,-.5):
	 * sab = -1 - 0.5 = -1.5, saa = 2, sbb = 1.5: rho = -1.5/sqrt(3)
	 * pairs: (0,1) D, (0,2) D, (1,2) tied in b: tau-b = -2 / sqrt(3 * 2) */
	{
		const double a[] = {1, 2, 3}, b[] = {2, 1, 1};

		is_close(rank_spearman(a, b, 3), -1.5 / sqrt(3.0), 1e-12, "Spearman = -0.866 (a tie in b)");
		is_close(rank_kendall(a, b, 3), -2 / sqrt(6.0), 1e-12, "Kendall tau-b = -0.816 (a tie in b)");
	}
	/* reversed, with a NaN pair left out */
	{
		const double a[] = {1, NAN, 2, 3}, b[] = {3, 1, 2, 1};

		is_close(rank_spearman(a, b, 4), -1, 1e-12, "a NaN pair is left out: rho = -1");
		is_close(rank_kendall(a, b, 4), -1, 1e-12, "... tau = -1");
	}
	/* undefined: a constant side, one pair */
	{
		const double a[] = {1, 1, 1}, b[] = {1, 2, 3};

		ok(isnan(rank_spearman(a, b, 3)), "a constant side has no Spearman (NaN)");
		ok(isnan(rank_kendall(a, b, 3)), "... nor Kendall");
		ok(isnan(rank_spearman(b, a, 1)), "one pair has no Spearman");
		ok(isnan(rank_kendall(b, a, 1)), "... nor Kendall");
	}
	/* overlap of the k lowest:
	 * a = {.1,.5,.2,.9} lowest first: 0, 2, 1, 3; b = {.3,.1,.2,.8}: 1, 2, 0, 3 */
	{
		const double a[] = {.1, .5, .2, .9}, b[] = {.3, .1, .2, .8};

		is_int(rank_overlap_lowest(a, b, 4, 1), 0, "k=1: {0} and {1} share none");
		is_int(rank_overlap_lowest(a, b, 4, 2), 1, "k=2: {0,2} and {1,2} share 1");
		is_int(rank_overlap_lowest(a, b, 4, 3), 3, "k=3: {0,2,1} and {1,2,0} share 3");
		is_int(rank_overlap_lowest(a, b, 4, 9), 4, "k past n is clipped: all 4");
	}
	/* ties go to the higher index (the deeper layer) */
	{
		const double a[] = {.1, .1, .5}, b[] = {.1, .9, .9}, c[] = {.2, .1, .9};

		is_int(rank_overlap_lowest(a, b, 3, 1), 0, "a tie picks the deeper index: {1} vs {0}");
		is_int(rank_overlap_lowest(a, c, 3, 1), 1, "... {1} vs {1}");
	}
	return tap_done();
}
