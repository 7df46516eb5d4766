/*
 * screen_toggle: the mask being built, site by site.  Each layer shows
 * its attn, mlp and block with a [x] when dropped and its importance on
 * the ramp; Space drops or restores the site under the cursor, p
 * applies a plan (plan_make: method and k) to the open run's scores.
 * The what-if panel (also drawn beside the heatmap) updates at once
 * from plan_effect: parameters removed, KV-cache bytes saved per token,
 * matmul FLOPs saved per token and the speedup those FLOPs predict (for
 * prefill, compute-bound), and the speedup the weight bytes no longer
 * read predict (speed_weight_bytes; for decode, memory-bound); and
 * shows what was measured for exactly this mask (from the store, or
 * from e / b run in the background) beside the unmasked model's figures
 * (the baseline, measured by the same jobs) with the difference, marked
 * within noise when ppl differs by at most two combined standard errors
 * or the decode speeds' min-max ranges over the repeats overlap.
 */
#include <math.h>
#include <string.h>

#include "ui/ui.h"

#include "model/mask.h"

#define TW 12   /* "[x] 0.1234 " */

void whatif_draw(struct tui *t, WINDOW *w, int y0, int x0, int h, int wd)
{
	const struct plan_effect *e = &t->eff;
	const struct measured *me = &t->meas;
	int y = y0, end = y0 + h;
	char a[32];

	if (!t->m || wd < 20)
		return;
#define LINE(...) do { if (y < end) draw_textf(w, y++, x0, wd, __VA_ARGS__); } while (0)
	wattron(w, A_BOLD);
	LINE("What if (predicted)");
	wattroff(w, A_BOLD);
	LINE("mask %s", t->mask_text);
	LINE("dropped %d attn, %d mlp, %d blocks", e->attn_dropped, e->mlp_dropped,
	     e->blocks_dropped);
	LINE("params removed  %llu", (unsigned long long)e->params);
	if (t->total_params)
		LINE("  %.2f%% of %s", 100.0 * (double)e->params / (double)t->total_params,
		     draw_si((double)t->total_params, a, sizeof a));
	LINE("KV bytes/token  %llu", (unsigned long long)e->kv_bytes_per_token);
	LINE("FLOPs/token     %llu", (unsigned long long)e->flops_per_token);
	if (t->total_flops)
		LINE("  %.2f%% of %s", 100.0 * (double)e->flops_per_token / (double)t->total_flops,
		     draw_si((double)t->total_flops, a, sizeof a));
	LINE("speedup (FLOPs) %.3fx", t->speedup);
	LINE("speedup (bytes) %.3fx", t->speedup_bytes);
	if (y < end)
		y++;
	wattron(w, A_BOLD);
	LINE("Measured (e eval, b bench)");
	wattroff(w, A_BOLD);
	if (me->have_eval) {
		LINE("ppl %.4f%s", me->ppl, me->eval_cached ? " (stored)" : "");
		if (!t->mask_key[0]) {
			LINE("  (the unmasked model: the baseline)");
		} else if (me->have_base_eval) {
			double d = me->ppl - me->base_ppl;
			double se = sqrt((isnan(me->ppl_se) ? 0 : me->ppl_se * me->ppl_se) +
					 (isnan(me->base_ppl_se) ? 0 : me->base_ppl_se * me->base_ppl_se));

			LINE("  base %.4f  %+.4f (%+.1f%%)", me->base_ppl, d, 100 * d / me->base_ppl);
			if (se > 0 && fabs(d) <= 2 * se)
				LINE("  within noise (2 stderr %.4f)", 2 * se);
		} else {
			LINE("  base -  (e measures it too)");
		}
		LINE("kl %.6f top1 %.2f%%", me->kl, 100 * me->top1);
	} else {
		LINE("ppl -  (e evaluates)");
	}
	if (me->have_bench) {
		LINE("decode %.0f tok/s%s", me->decode_tps, me->bench_cached ? " (stored)" : "");
		if (!isnan(me->decode_min) && me->decode_max > 0)
			LINE("  min %.0f  max %.0f", me->decode_min, me->decode_max);
		if (!t->mask_key[0]) {
			LINE("  (the unmasked model: the baseline)");
		} else if (me->have_base_bench && me->base_decode > 0) {
			int noise = !(me->decode_min > me->base_decode_max ||
				      me->decode_max < me->base_decode_min);

			LINE("  base %.0f  %+.1f%%%s", me->base_decode,
			     100 * (me->decode_tps - me->base_decode) / me->base_decode,
			     noise ? " within noise" : "");
			LINE("  base min %.0f  max %.0f", me->base_decode_min, me->base_decode_max);
		} else {
			LINE("  base -  (b measures it too)");
		}
		LINE("prefill %.0f tok/s", me->prefill_tps);
	} else {
		LINE("tok/s -  (b benches)");
	}
#undef LINE
}

void toggle_draw(struct tui *t, WINDOW *w)
{
	struct heat_state *hs = &t->heat;
	int W = t->cols, H = getmaxy(w), vis = H - 4, L;
	double lo = INFINITY, hi = -INFINITY;

	if (!t->m || !t->mask) {
		draw_text(w, 1, 1, W - 2, "No model is open (1 Home, o).");
		return;
	}
	L = t->mask->n_layer;
	if (hs->col > 2)
		hs->col = 2;
	if (hs->layer >= L)
		hs->layer = L - 1;
	if (vis < 1)
		vis = 1;
	if (hs->layer < hs->top)
		hs->top = hs->layer;
	if (hs->layer >= hs->top + vis)
		hs->top = hs->layer - vis + 1;
	if (t->cur)
		for (int c = 0; c < 3; c++)
			for (int l = 0; l < L; l++) {
				double v = scores_imp(t->cur, c, l);

				if (isfinite(v)) {
					lo = fmin(lo, v);
					hi = fmax(hi, v);
				}
			}
	wattron(w, A_BOLD);
	draw_textf(w, 0, 0, W, " Toggle  %s", t->cur ? t->cur->label : "(no run open: importance unknown)");
	wattroff(w, A_BOLD);
	draw_textf(w, 1, 0, W, "layer  %-*s%-*s%-*s", TW, " attn", TW, " mlp", TW, " block");
	for (int r = 0; r < vis && hs->top + r < L; r++) {
		int l = hs->top + r;

		draw_textf(w, 2 + r, 0, 6, "%4d", l);
		for (int c = 0; c < 3; c++) {
			int dropped = c == 0 ? !t->mask->attn[l] : c == 1 ? !t->mask->mlp[l]
				: !t->mask->attn[l] && !t->mask->mlp[l];
			double v = t->cur ? scores_imp(t->cur, c, l) : NAN;
			char buf[16];
			int x = 6 + c * TW, sel = l == hs->layer && c == hs->col;

			if (sel)
				wattron(w, A_REVERSE);
			mvwaddstr(w, 2 + r, x, dropped ? "[x]" : "[ ]");
			wattroff(w, A_REVERSE);
			snprintf(buf, sizeof buf, isfinite(v) ? "%.4f" : "-", v);
			colour_cell(w, 2 + r, x + 4, TW - 5, colour_step(v, lo, hi), buf, sel, 0);
		}
	}
	draw_textf(w, H - 1, 0, W, " mask: %s", t->mask_text);
	if (W - (6 + 3 * TW + 2) >= 24)
		whatif_draw(t, w, 1, 6 + 3 * TW + 2, H - 2, W - (6 + 3 * TW + 2));
}

void toggle_key(struct tui *t, int act, int ch)
{
	(void)ch;
	if (!t->mask)
		return;
	if (act == ACT_ENTER)
		act = ACT_TOGGLE;
	layers_key(t, act, 2);
}

void toggle_click(struct tui *t, int y, int x)
{
	struct heat_state *hs = &t->heat;
	int r = y - 2, c = (x - 6) / TW;

	if (!t->mask || r < 0 || x < 6 || c > 2 || hs->top + r >= t->mask->n_layer ||
	    r >= getmaxy(t->wbody) - 4)
		return;
	hs->layer = hs->top + r;
	hs->col = c;
	tui_toggle_site(t, hs->layer, c);
}
