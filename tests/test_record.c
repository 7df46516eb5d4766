/*
 * test_record: the settings text and metric rows every writer of the
 * store uses (db/record.h) -- pinned, since a change would orphan every
 * cached measurement -- and a speed result's round trip through rows.
 */
#include "db/record.h"
#include "measure/eval.h"
#include "measure/evaltask.h"
#include "measure/speed.h"
#include "tap.h"

int main(void)
{
	char buf[256];

	record_text_settings(buf, sizeof buf, 256, 8192);
	has_str(buf, "ctx=256;max_tokens=8192", "ppl/kl settings");
	ok(!strcmp(buf, "ctx=256;max_tokens=8192"), "... exactly");
	record_choice_settings(buf, sizeof buf, 512, 100, 0, 5, 7);
	ok(!strcmp(buf, "ctx=512;limit=100"), "multiple-choice settings: %s", buf);
	record_choice_settings(buf, sizeof buf, 512, 0, 1, 5, 7);
	ok(!strcmp(buf, "ctx=512;limit=0;seed=7;shots=5"), "MMLU adds seed and shots: %s", buf);

	int ctx[3] = {128, 512, 2048};
	struct speed_opts o = {0};

	o.ctx = ctx;
	o.n_ctx = 3;
	o.gen = 32;
	o.repeat = 3;
	record_speed_settings(buf, sizeof buf, &o, 2);
	ok(!strcmp(buf, "ctx=128,512,2048;gen=32;repeat=3;threads=2"), "speed settings: %s", buf);

	/* ppl: se(ppl) by the delta method */
	struct ppl_result pr = {1000, 2.0, exp(2.0), 0.01};
	struct store_metric rows[16];
	size_t n = record_ppl_rows(&pr, rows);

	is_int((long)n, 2, "ppl gives 2 rows");
	ok(!strcmp(rows[0].metric, "ppl") && !strcmp(rows[1].metric, "nll"), "ppl, nll");
	is_close(rows[0].stderr_, exp(2.0) * 0.01, 1e-12, "se(ppl) = ppl x se(nll)");
	is_int((long)rows[1].n, 1000, "n is the tokens scored");
	ok(isnan(rows[0].min) && isnan(rows[0].max), "no min/max for an evaluation");

	struct kl_result kr = {500, 0.25, 0.02, 1.5, 0.8, 0.018};

	n = record_kl_rows(&kr, rows);
	is_int((long)n, 3, "kl gives 3 rows");
	ok(!strcmp(rows[0].metric, "kl_mean") && !strcmp(rows[1].metric, "kl_p99") &&
	   !strcmp(rows[2].metric, "top1_agree"), "kl_mean, kl_p99, top1_agree");
	ok(isnan(rows[1].stderr_), "kl_p99 has no standard error");
	is_close(rows[2].value, 0.8, 0, "top1_agree's value");

	/* speed: rows and back */
	struct speed_ctx sc[3] = {
		{128, {900, 850, 950}, 1000, 1000},
		{512, {800, 790, 820}, 4000, 4000},
		{2048, {500, 480, 510}, 16000, 16000},
	};
	struct speed_result r = {3, sc, 32, {40, 38, 41}, 123456, 7890123};
	struct speed_result back;

	n = record_speed_rows(&r, 3, rows);
	is_int((long)n, 2 * 3 + 3, "speed gives prefill and kv per context, decode, weights, rss");
	is_int(record_speed_result(rows, n, &o, &back), 0, "rows read back");
	for (int i = 0; i < 3; i++) {
		is_close(back.ctx[i].tps.med, sc[i].tps.med, 0, "prefill median at %d", ctx[i]);
		is_close(back.ctx[i].tps.min, sc[i].tps.min, 0, "... min");
		is_close(back.ctx[i].tps.max, sc[i].tps.max, 0, "... max");
		is_int((long)back.ctx[i].kv_bytes, (long)sc[i].kv_bytes, "kv bytes at %d", ctx[i]);
	}
	is_close(back.decode_tps.med, 40, 0, "decode median");
	is_int((long)back.weight_bytes, 123456, "weight bytes");
	is_int((long)back.rss_peak, 7890123, "peak RSS");
	speed_result_free(&back);
	/* rows that miss a context's kv bytes (an older writer kept only
	 * the largest) are not a result */
	{
		struct store_metric part[16];
		size_t k = 0;

		for (size_t i = 0; i < n; i++)
			if (strcmp(rows[i].metric, "kv_bytes") || rows[i].ctx == 2048)
				part[k++] = rows[i];
		is_int(record_speed_result(part, k, &o, &back), -1,
		       "rows without every context's kv bytes are refused");
	}
	/* other contexts asked for than stored */
	ctx[2] = 1024;
	is_int(record_speed_result(rows, n, &o, &back), -1, "a context not stored is refused");
	return tap_done();
}
