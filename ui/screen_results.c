/*
 * screen_results: what was measured for the open model, from the
 * store's views -- the evaluations (eval_list, which sweeps fill too)
 * as a table, a chart of quality (perplexity) against the number of
 * layers dropped with one line per method (the method that made each
 * mask comes from sweep_list, else the stored plans, else "mask" for
 * one made by hand), and speed (decode tok/s, bench_list) against
 * quality with the Pareto frontier numbered 1, 2, ... from the best ppl
 * and listed under the chart: the masks no other mask beats on both.
 * The perplexities charted are those of one data file and settings
 * (named in the chart's title): the workbench's own evaluation file
 * when the store has it, else the one measured most; perplexities of
 * different text cannot share an axis.  An axis spanning decades is
 * logarithmic (draw_chart).  A sweep's quantized points (settings with
 * ;quant=, app_sweep_quant) have their quantization and bytes in columns
 * of the table and are points of their own in the speed chart (named in
 * the frontier's list), never in the layers-dropped chart.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

#include "model/mask.h"

/* The value of NAME=VALUE in a settings column ("" when absent): a
 * quantized point's quant and bytes (app_sweep_quant). */
#define SETTING(col, name) \
	"CASE WHEN instr(" col ", ';" name "=') > 0 THEN substr(" col ", instr(" col ", ';" \
	name "=') + length('" name "') + 2, instr(substr(" col ", instr(" col ", ';" name \
	"=') + length('" name "') + 2) || ';', ';') - 1) ELSE '' END"
static const char SQL_EVALS[] =
	"SELECT eval, mask, " SETTING("settings", "quant") " AS quant, " SETTING("settings", "bytes")
	" AS bytes, task, metric, value, stderr, n, settings, created_at FROM eval_list"
	" WHERE ?1 = 0 OR model_id = ?1 ORDER BY eval DESC, metric";
static const char SQL_PPL_DATA[] =
	"SELECT e.data_sha256, e.settings, coalesce(d.path, substr(e.data_sha256, 1, 12)), count(*)"
	" FROM evals e JOIN eval_metrics em ON em.eval_id = e.id"
	" LEFT JOIN datasets d ON d.sha256 = e.data_sha256"
	" WHERE e.model_id = ?1 AND e.task = 'ppl' AND em.metric = 'ppl'"
	" GROUP BY e.data_sha256, e.settings ORDER BY count(*) DESC, max(e.id) DESC";
/* quantized points: the chart's settings followed by ;compute=...;quant=... */
static const char SQL_PPL[] =
	"SELECT e.mask, em.value, " SETTING("e.settings", "quant") " FROM evals e"
	" JOIN eval_metrics em ON em.eval_id = e.id"
	" WHERE e.model_id = ?1 AND e.task = 'ppl' AND em.metric = 'ppl'"
	" AND e.data_sha256 = ?2 AND (e.settings = ?3 OR (instr(e.settings, ';quant=') > 0"
	" AND substr(e.settings, 1, length(?3) + 1) = ?3 || ';')) ORDER BY e.id";
static const char SQL_TPS[] =
	"SELECT b.mask, bm.value, " SETTING("b.settings", "quant") " FROM benches b"
	" JOIN bench_metrics bm ON bm.bench_id = b.id"
	" WHERE b.model_id = ?1 AND bm.metric = 'decode_tps' ORDER BY b.id";
static const char SQL_METHOD[] =
	"SELECT s.mask, s.method FROM sweep_list s JOIN calib_runs r ON r.id = s.run"
	" WHERE r.model_id = ?1"
	" UNION ALL SELECT p.mask, p.method FROM plan_list p JOIN calib_runs r ON r.id = p.run"
	" WHERE r.model_id = ?1";

/* The point of mask m and quantization q (NULL or "": none). */
static struct res_pt *find_pt(struct tui *t, const struct store_value *m,
			      const struct store_value *q, int create)
{
	struct results_state *r = &t->res;
	char mask[512], quant[48];

	snprintf(mask, sizeof mask, "%.*s", (int)m->len, m->s ? m->s : "");
	snprintf(quant, sizeof quant, "%.*s", q && q->type == STORE_TEXT ? (int)q->len : 0,
		 q && q->s ? q->s : "");
	for (int i = 0; i < r->n_pt; i++)
		if (!strcmp(r->pt[i].mask, mask) && !strcmp(r->pt[i].quant, quant))
			return &r->pt[i];
	if (!create || r->n_pt >= 512)
		return NULL;
	if (r->n_pt % 32 == 0) {
		struct res_pt *p = realloc(r->pt, (size_t)(r->n_pt + 32) * sizeof *p);

		if (!p)
			return NULL;
		r->pt = p;
	}
	{
		struct res_pt *p = &r->pt[r->n_pt++];
		struct st_err err = {0};
		struct mask *mk = NULL;

		memset(p, 0, sizeof *p);
		snprintf(p->mask, sizeof p->mask, "%s", mask);
		snprintf(p->quant, sizeof p->quant, "%s", quant);
		snprintf(p->method, sizeof p->method, "%s", mask[0] && strcmp(mask, "attn=;mlp=") ?
			 "mask" : "none");
		p->ppl = p->tps = NAN;
		if (t->m && mask_parse(mask, t->m->hp.n_layer, &mk, &err) == 0) {
			int blocks = 0;

			for (int l = 0; l < mk->n_layer; l++)
				blocks += !mk->attn[l] && !mk->mlp[l];
			p->x = mask_n_dropped_attn(mk) + mask_n_dropped_mlp(mk) - blocks;
			mask_free(mk);
		}
		return p;
	}
}

/* Pick the data file and settings whose perplexities the charts show. */
static int data_row(void *ud, int stmt, int n, const char *const *names,
		    const struct store_value *v)
{
	struct tui *t = ud;
	struct results_state *r = &t->res;
	char mine[128];
	int is_mine;

	(void)stmt, (void)n, (void)names;
	if (v[0].type != STORE_TEXT || v[1].type != STORE_TEXT)
		return 0;
	job_eval_settings(t->m, mine, sizeof mine);
	is_mine = t->eval_sha[0] && (int)v[0].len == 64 && !memcmp(v[0].s, t->eval_sha, 64) &&
		  strlen(mine) == v[1].len && !memcmp(v[1].s, mine, v[1].len);
	if (r->n_data++ == 0 || is_mine) {
		const char *name = v[2].type == STORE_TEXT ? v[2].s : "", *slash;
		int len = v[2].type == STORE_TEXT ? (int)v[2].len : 0;

		slash = memrchr(name, '/', (size_t)len);
		if (slash) {
			len -= (int)(slash + 1 - name);
			name = slash + 1;
		}
		snprintf(r->data_sha, sizeof r->data_sha, "%.*s", (int)v[0].len, v[0].s);
		snprintf(r->data_settings, sizeof r->data_settings, "%.*s", (int)v[1].len, v[1].s);
		snprintf(r->data_name, sizeof r->data_name, "%.*s", len, name);
	}
	return 0;
}

static int ppl_row(void *ud, int stmt, int n, const char *const *names, const struct store_value *v)
{
	struct res_pt *p = find_pt(ud, &v[0], &v[2], 1);

	(void)stmt, (void)n, (void)names;
	if (p)
		p->ppl = v[1].d;
	return 0;
}

static int tps_row(void *ud, int stmt, int n, const char *const *names, const struct store_value *v)
{
	struct res_pt *p = find_pt(ud, &v[0], &v[2], 0);

	(void)stmt, (void)n, (void)names;
	if (p)
		p->tps = v[1].d;
	return 0;
}

static int method_row(void *ud, int stmt, int n, const char *const *names,
		      const struct store_value *v)
{
	struct res_pt *p = find_pt(ud, &v[0], NULL, 0);

	(void)stmt, (void)n, (void)names;
	if (p && !strcmp(p->method, "mask"))
		snprintf(p->method, sizeof p->method, "%.*s", (int)v[1].len, v[1].s);
	return 0;
}

void results_load(struct tui *t)
{
	struct results_state *r = &t->res;
	struct st_err err = {0};
	struct store_value p = store_int(t->m ? t->model_id : 0), pd[3];

	grid_reset(&r->evals);
	free(r->pt);
	r->pt = NULL;
	r->n_pt = 0;
	r->n_data = 0;
	r->data_name[0] = r->data_sha[0] = r->data_settings[0] = 0;
	if (t->m && store_query(t->s, SQL_PPL_DATA, 0, &p, 1, data_row, NULL, t, &err) < 0)
		tui_err(t, "%s", err.msg);
	pd[0] = p;
	pd[1] = store_text(r->data_sha);
	pd[2] = store_text(r->data_settings);
	if (store_query(t->s, SQL_EVALS, 0, &p, 1, grid_query_row, grid_query_cols, &r->evals,
			&err) < 0 ||
	    (t->m && (store_query(t->s, SQL_PPL, 0, pd, 3, ppl_row, NULL, t, &err) < 0 ||
		      store_query(t->s, SQL_TPS, 0, &p, 1, tps_row, NULL, t, &err) < 0 ||
		      store_query(t->s, SQL_METHOD, 0, &p, 1, method_row, NULL, t, &err) < 0)))
		tui_err(t, "%s", err.msg);
	if (r->sel >= r->evals.n_rows)
		r->sel = r->evals.n_rows ? r->evals.n_rows - 1 : 0;
	t->dirty_body = 1;
}

static int cmp_x(const void *a, const void *b)
{
	const struct chart_pt *p = a, *q = b;

	return p->x < q->x ? -1 : p->x > q->x;
}

static void charts(struct tui *t, WINDOW *w, int y0, int h)
{
	struct results_state *r = &t->res;
	static const char *const methods[] = {"attn", "mlp", "block", "joint", "contiguous", "mask"};
	/* distinct keys: mlp and a mask made by hand both start with m */
	static const char glyphs[] = "ambjch";
	static const char *const names[] = {"attn", "mlp", "block", "joint", "contiguous", "by hand"};
	struct chart_series s[6];
	char title[512];
	struct chart_pt *all = calloc((size_t)(r->n_pt + 1) * 7, sizeof *all);
	int ns = 0, half = t->cols / 2, used = 0, n_front = 0;
	const struct res_pt *base = NULL;

	if (!all)
		return;
	/* layers dropped: the unquantized points (quantized ones are in the
	 * speed chart, and in the table with their bytes) */
	for (int i = 0; i < r->n_pt; i++)
		if (!strcmp(r->pt[i].method, "none") && !r->pt[i].quant[0])
			base = &r->pt[i];
	for (int m = 0; m < 6; m++) {
		struct chart_series *c = &s[ns];

		c->name = names[m];
		c->glyph = glyphs[m];
		c->pt = all + used;
		c->n = 0;
		c->connect = 1;
		if (base && isfinite(base->ppl))
			c->pt[c->n++] = (struct chart_pt){0, base->ppl, 0, 0};
		for (int i = 0; i < r->n_pt; i++)
			if (!strcmp(r->pt[i].method, methods[m]) && !r->pt[i].quant[0] &&
			    isfinite(r->pt[i].ppl))
				c->pt[c->n++] = (struct chart_pt){r->pt[i].x, r->pt[i].ppl, 0, 0};
		if (c->n > (base && isfinite(base->ppl))) {
			qsort(c->pt, (size_t)c->n, sizeof *c->pt, cmp_x);
			used += c->n;
			ns++;
		}
	}
	{
		char legend[256] = "";

		for (int i = 0; i < ns; i++) {
			size_t l = strlen(legend);

			snprintf(legend + l, sizeof legend - l, "%s%c=%s", i ? " " : "", s[i].glyph,
				 s[i].name);
		}
		if (r->data_name[0])
			snprintf(title, sizeof title, "ppl vs layers dropped, %s (%s)%s", r->data_name,
				 r->data_settings, r->n_data > 1 ? " +other data in the table" : "");
		else
			snprintf(title, sizeof title, "ppl vs layers dropped");
		draw_chart(w, y0, 0, h - 1, half - 1, "layers dropped", title, s, ns);
		draw_text(w, y0 + h - 1, 1, half - 2, legend);
	}
	/* speed vs quality, Pareto frontier: no other point has lower ppl and higher tok/s */
	{
		struct chart_series p = {"masks", 'o', 0, all + used, 0};
		const struct res_pt *front[36];
		char list[1024];
		size_t len;

		for (int i = 0; i < r->n_pt; i++) {
			const struct res_pt *a = &r->pt[i];
			int dominated = 0;

			if (!isfinite(a->ppl) || !isfinite(a->tps))
				continue;
			for (int k = 0; k < r->n_pt; k++) {
				const struct res_pt *b = &r->pt[k];

				if (k != i && isfinite(b->ppl) && isfinite(b->tps) && b->ppl <= a->ppl &&
				    b->tps >= a->tps && (b->ppl < a->ppl || b->tps > a->tps))
					dominated = 1;
			}
			p.pt[p.n++] = (struct chart_pt){a->ppl, a->tps, !dominated, 0};
			if (!dominated && n_front < 36)
				front[n_front++] = a;
		}
		/* the frontier numbered from the best ppl: 1-9, then A-Z */
		for (int i = 1; i < n_front; i++)
			for (int k = i; k > 0 && front[k]->ppl < front[k - 1]->ppl; k--) {
				const struct res_pt *x = front[k];

				front[k] = front[k - 1];
				front[k - 1] = x;
			}
		len = (size_t)snprintf(list, sizeof list, "Pareto %d of %d:", n_front, p.n);
		for (int i = 0; i < n_front; i++) {
			char lab = i < 9 ? (char)('1' + i) : (char)('A' + i - 9), human[256];
			struct mask *mk = NULL;
			struct st_err err = {0};

			for (int k = 0; k < p.n; k++)
				if (p.pt[k].x == front[i]->ppl && p.pt[k].y == front[i]->tps)
					p.pt[k].label = lab;
			if (t->m && front[i]->mask[0] &&
			    mask_parse(front[i]->mask, t->m->hp.n_layer, &mk, &err) == 0 &&
			    !mask_is_empty(mk))
				mask_format_human(mk, human, sizeof human);
			else
				snprintf(human, sizeof human, "none");
			mask_free(mk);
			if (len < sizeof list)
				len += (size_t)snprintf(list + len, sizeof list - len, " %c %s%s%s", lab,
							human, front[i]->quant[0] ? " " : "",
							front[i]->quant);
		}
		if (r->data_name[0])
			snprintf(title, sizeof title, "decode tok/s vs ppl, %s", r->data_name);
		else
			snprintf(title, sizeof title, "decode tok/s vs ppl");
		draw_chart(w, y0, half, h - 1, t->cols - half - 1, "ppl", title, &p, 1);
		draw_text(w, y0 + h - 1, half + 1, t->cols - half - 2, list);
	}
	free(all);
}

void results_draw(struct tui *t, WINDOW *w)
{
	struct results_state *r = &t->res;
	int H = getmaxy(w), th = H / 2 - 1, vis = th - 2;

	if (vis < 1)
		vis = 1;
	if (r->sel < r->top)
		r->top = r->sel;
	if (r->sel >= r->top + vis)
		r->top = r->sel - vis + 1;
	wattron(w, A_BOLD);
	draw_textf(w, 0, 0, t->cols, " Evaluations of %s (%d rows, newest first)",
		   t->m ? t->model_path : "every model", r->evals.n_rows);
	wattroff(w, A_BOLD);
	if (!r->evals.n_rows)
		draw_text(w, 2, 2, t->cols - 3, "(none yet: e on the Heatmap or Toggle screen "
			  "evaluates the current mask)");
	else
		grid_draw(w, &r->evals, 1, 1, th, t->cols - 2, r->top, 0, r->sel);
	charts(t, w, th + 1, H - th - 1);
}

void results_key(struct tui *t, int act, int ch)
{
	struct results_state *r = &t->res;
	int n = r->evals.n_rows;

	(void)ch;
	switch (act) {
	case ACT_UP:
		if (r->sel > 0)
			r->sel--;
		break;
	case ACT_DOWN:
		if (r->sel + 1 < n)
			r->sel++;
		break;
	case ACT_PGUP:
		r->sel = r->sel > 10 ? r->sel - 10 : 0;
		break;
	case ACT_PGDN:
		r->sel = r->sel + 10 < n ? r->sel + 10 : n ? n - 1 : 0;
		break;
	case ACT_TOP:
		r->sel = 0;
		break;
	case ACT_BOTTOM:
		r->sel = n ? n - 1 : 0;
		break;
	case ACT_RELOAD:
		results_load(t);
		tui_msg(t, "reloaded");
		break;
	default:
		return;
	}
	t->dirty_body = 1;
}
