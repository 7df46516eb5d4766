/*
 * test_speed: the benchmark loop behind `strata bench` -- its figures
 * are well formed, the KV bytes follow the mask, and its progress
 * callback sees the run go from 0 to 1 and can cancel it.
 */
#include "model/mask.h"
#include "model/model.h"
#include "measure/speed.h"
#include "tap.h"

struct seen {
	int calls, cancel_at, monotone;
	double last;
};

static int on_progress(void *ud, double done)
{
	struct seen *s = ud;

	if (done < s->last || done > 1 + 1e-12)
		s->monotone = 0;
	s->last = done;
	s->calls++;
	return s->cancel_at && s->calls >= s->cancel_at;
}

int main(void)
{
	const char *p = tap_shared("models/stories260K/stories260K.gguf");
	struct st_err err = {0};
	struct model *m = NULL;

	if (!p)
		return tap_done();
	if (!ok(model_load(p, NULL, &m, &err) == 0, "load stories260K: %s", err.msg))
		return tap_done();

	int ctx[2] = {16, 64};
	struct seen sn = {0, 0, 1, 0};
	struct speed_opts o = {ctx, 2, 8, 4, 2, 1, on_progress, &sn};
	struct speed_result r;

	is_int(speed_run(m, NULL, &o, &r, &err), 0, "a run with progress: %s", err.msg);
	/* 2 repeats x 8 decode steps + 2 repeats x 2 contexts */
	is_int(sn.calls, 2 * 8 + 2 * 2, "one progress call per timed step");
	ok(sn.monotone, "progress never goes back");
	is_close(sn.last, 1.0, 1e-12, "and ends at 1");
	is_int(r.n_ctx, 2, "two contexts measured");
	ok(r.ctx[0].tps.med > 0 && r.ctx[0].tps.min <= r.ctx[0].tps.med &&
	   r.ctx[0].tps.med <= r.ctx[0].tps.max, "prefill min <= median <= max");
	ok(r.decode_tps.med > 0, "decode tokens/s measured");
	is_int((long)r.ctx[1].kv_bytes,
	       (long)(2 * m->hp.n_layer * m->hp.n_head_kv * m->hp.head_dim * 4 * 64),
	       "KV bytes at ctx 64: 2 x layers x kv heads x head dim x 4 x 64");
	speed_result_free(&r);

	/* a mask with two attentions dropped holds their KV cache no more */
	struct mask *mk = NULL;

	is_int(mask_parse("attn=1,3", m->hp.n_layer, &mk, &err), 0, "parse a mask");
	sn = (struct seen){0, 0, 1, 0};
	is_int(speed_run(m, mk, &o, &r, &err), 0, "a masked run: %s", err.msg);
	is_int((long)r.ctx[1].kv_bytes,
	       (long)(2 * (m->hp.n_layer - 2) * m->hp.n_head_kv * m->hp.head_dim * 4 * 64),
	       "... KV bytes of the kept layers only");
	ok(r.weight_bytes < speed_weight_bytes(m, NULL), "... and fewer weight bytes");
	speed_result_free(&r);
	mask_free(mk);

	/* cancel in the middle of the decode */
	sn = (struct seen){0, 5, 1, 0};
	is_int(speed_run(m, NULL, &o, &r, &err), ST_ECANCEL, "the callback cancels the run");
	has_str(err.msg, "cancelled", "... saying so");
	is_int(sn.calls, 5, "... at once");
	ok(r.ctx == NULL && r.n_ctx == 0, "... leaving nothing to free");

	/* no callback: the same run */
	o.progress = NULL;
	is_int(speed_run(m, NULL, &o, &r, &err), 0, "without a callback it runs as before");
	speed_result_free(&r);
	model_free(m);
	return tap_done();
}
