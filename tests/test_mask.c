/*
 * test_mask: the canonical text form of masks (parse, format, errors
 * with positions).
 */
#include "model/mask.h"
#include "tap.h"

static void roundtrip(const char *in, int n_layer, const char *want)
{
	struct mask *m = NULL;
	struct st_err err = {0};
	char buf[256];
	int rc = mask_parse(in, n_layer, &m, &err);

	ok(rc == 0, "parse '%s' (%s)", in, rc ? err.msg : "ok");
	if (!m)
		return;
	mask_format(m, buf, sizeof buf);
	ok(strcmp(buf, want) == 0, "'%s' formats as '%s' (got '%s')", in, want, buf);
	mask_free(m);
}

/* the form for people: whole blocks as block=, and it parses back */
static void human(const char *in, int n_layer, const char *want)
{
	struct mask *m = NULL, *back = NULL;
	struct st_err err = {0};
	char buf[256], canon[256], canon_back[256];
	size_t need;

	if (mask_parse(in, n_layer, &m, &err) < 0) {
		ok(0, "parse '%s' (%s)", in, err.msg);
		return;
	}
	need = mask_format_human(m, buf, sizeof buf);
	ok(strcmp(buf, want) == 0 && need == strlen(want),
	   "'%s' reads '%s' for people (got '%s')", in, want, buf);
	ok(mask_parse(buf, n_layer, &back, &err) == 0, "'%s' parses back", buf);
	if (back) {
		mask_format(m, canon, sizeof canon);
		mask_format(back, canon_back, sizeof canon_back);
		ok(strcmp(canon, canon_back) == 0, "'%s' is the same mask as '%s'", buf, canon);
	}
	mask_free(back);
	mask_free(m);
}

static void bad(const char *in, int n_layer, const char *want_msg)
{
	struct mask *m = NULL;
	struct st_err err = {0};
	int rc = mask_parse(in, n_layer, &m, &err);

	ok(rc == ST_EINVAL && m == NULL, "'%s' rejected", in);
	has_str(err.msg, want_msg, "error for '%s' says '%s'", in, want_msg);
}

int main(void)
{
	struct mask *m;
	struct st_err err = {0};
	char small[8];
	size_t need;

	roundtrip("", 32, "attn=;mlp=");
	roundtrip("none", 32, "attn=;mlp=");
	roundtrip("attn=22,24-26;mlp=30", 32, "attn=22,24-26;mlp=30");
	roundtrip("attn=26,25,24,22;mlp=30", 32, "attn=22,24-26;mlp=30");
	roundtrip("mlp=3 ; attn= 1 - 2", 5, "attn=1-2;mlp=3");
	roundtrip("attn=0-4;mlp=", 5, "attn=0-4;mlp=");
	roundtrip("block=3,1", 5, "attn=1,3;mlp=1,3");
	roundtrip("attn=1;block=2;mlp=4", 5, "attn=1-2;mlp=2,4");

	human("attn=3-4;mlp=3-4", 5, "block=3-4");
	human("block=3-4", 5, "block=3-4");
	human("attn=1,3-4;mlp=0,3-4", 5, "block=3-4;attn=1;mlp=0");
	human("attn=0-1;mlp=1-2", 5, "block=1;attn=0;mlp=2");
	human("attn=2,4;mlp=", 5, "attn=2,4;mlp=");
	human("", 5, "attn=;mlp=");
	human("block=0-4", 5, "block=0-4");

	need = mask_text_human("attn=3-4;mlp=3-4", small, sizeof small);
	ok(need == strlen("block=3-4") && strcmp(small, "block=3") == 0,
	   "mask_text_human from the text alone: 'block=3-4' (truncated '%s')", small);
	{
		char big[64];

		mask_text_human("attn=1,30-31;mlp=30-31", big, sizeof big);
		ok(!strcmp(big, "block=30-31;attn=1"), "... for any depth ('%s')", big);
		mask_text_human("atn=1", big, sizeof big);
		ok(!strcmp(big, "atn=1"), "... and text that does not parse is kept ('%s')", big);
	}

	bad("attn=5", 5, "position 6");
	bad("attn=5", 5, "out of range");
	bad("attn=1,x", 5, "position 8");
	bad("atn=1", 5, "position 1");
	bad("attn=3-1", 5, "reversed");
	bad("attn=1-", 5, "after '-'");
	bad("attn=1 2", 5, "expected ','");

	ok(mask_parse("attn=1,3;mlp=0", 5, &m, &err) == 0, "parse for counts");
	is_int(mask_n_dropped_attn(m), 2, "two attention sites dropped");
	is_int(mask_n_dropped_mlp(m), 1, "one mlp site dropped");
	ok(!mask_keeps_attn(m, 1) && mask_keeps_attn(m, 2), "keeps_attn follows the bits");
	ok(!mask_is_empty(m) && mask_is_empty(NULL), "is_empty");
	need = mask_format(m, small, sizeof small);
	is_int(need, strlen("attn=1,3;mlp=0"), "format returns the full length when truncated");
	ok(small[sizeof small - 1] == '\0' && strncmp(small, "attn=1,", 7) == 0,
	   "truncated output stays NUL-terminated ('%s')", small);
	mask_free(m);
	ok(mask_parse("block=0-4;attn=2", 5, &m, &err) == 0, "parse a block mask");
	need = mask_format_human(m, small, sizeof small);
	is_int(need, strlen("block=0-4"), "the human form returns the full length when truncated");
	ok(small[sizeof small - 1] == '\0' && strcmp(small, "block=0") == 0,
	   "truncated human form stays NUL-terminated ('%s')", small);
	mask_free(m);
	mask_free(NULL);

	/* the expert part: per layer, the dropped experts */
	roundtrip("attn=3;mlp=;expert=0:1,5;2:7", 5, "attn=3;mlp=;expert=0:1,5;2:7");
	roundtrip("expert=2:7;0:5,1,1", 5, "attn=;mlp=;expert=0:1,5;2:7");
	roundtrip("expert= 2 : 7 ; 0 : 3-5,1;attn=4", 5, "attn=4;mlp=;expert=0:1,3-5;2:7");
	roundtrip("expert=1:2;mlp=0;expert=1:3", 5, "attn=;mlp=0;expert=1:2-3");
	roundtrip("attn=1;expert=", 5, "attn=1;mlp=");
	roundtrip("expert=0:", 5, "attn=;mlp=");
	human("block=1;expert=0:3", 5, "block=1;expert=0:3");
	bad("expert=5:1", 5, "layer 5 at position 8 is out of range");
	bad("expert=1-2:1", 5, "expected ':' after layer 1");
	bad("expert=1:x", 5, "expected an expert number at position 10");
	bad("expert=1:70000", 5, "expert 70000 at position 10 is out of range");
	bad("expert=1:1;foo=2", 5, "position 12");
	ok(mask_parse("attn=1;expert=0:1,5;2:7", 5, &m, &err) == 0, "parse an expert mask");
	is_int(mask_n_dropped_expert(m), 3, "three experts dropped");
	ok(!mask_keeps_expert(m, 0, 5) && mask_keeps_expert(m, 0, 4) && mask_keeps_expert(m, 0, 60) &&
	   !mask_keeps_expert(m, 2, 7) && mask_keeps_expert(m, 1, 1) && mask_keeps_expert(NULL, 0, 1),
	   "keeps_expert follows the lists (indices past them kept)");
	is_int(mask_n_kept_experts(m, 0, 8), 6, "layer 0 keeps 6 of 8");
	ok(!mask_is_empty(m), "an expert mask is not empty");
	is_int(mask_check_experts(m, 8, 2, &err), 0, "fits a model of 8 experts, 2 a token");
	is_int(mask_check_experts(m, 7, 2, &err), ST_EINVAL, "refused for 7 experts");
	has_str(err.msg, "expert 7 of layer 2", "the error names the layer and the expert");
	is_int(mask_check_experts(m, 8, 7, &err), ST_EINVAL, "refused for top-7 of 8");
	has_str(err.msg, "keeps 6 of layer 0's 8 experts", "the error names the layer left short");
	is_int(mask_check_experts(m, 0, 0, &err), ST_EINVAL, "refused for a dense model");
	has_str(err.msg, "no experts", "... saying so");
	{ /* layers with different counts (0: a dense layer) */
		const int fits[5] = { 8, 6, 8, 4, 4 }, short2[5] = { 8, 6, 7, 4, 4 };
		const int dense0[5] = { 0, 6, 8, 4, 4 };

		is_int(mask_check_layer_experts(m, fits, 8, 2, &err), 0,
		       "fits layers of 8, 6, 8, 4 and 4 experts");
		is_int(mask_check_layer_experts(m, short2, 8, 2, &err), ST_EINVAL,
		       "refused where layer 2 has 7 experts");
		has_str(err.msg, "drops expert 7 of layer 2, but layer 2 has only experts 0-6",
			"the error names the layer and its count");
		is_int(mask_check_layer_experts(m, fits, 8, 7, &err), ST_EINVAL,
		       "refused for top-7 where layer 0 keeps 6 of 8 ...");
		has_str(err.msg, "keeps 6 of layer 0's 8 experts", "... naming it");
		is_int(mask_check_layer_experts(m, dense0, 8, 2, &err), ST_EINVAL,
		       "refused where layer 0 has no experts");
		has_str(err.msg, "layer 0 has no experts (a dense layer)", "... saying so");
		is_int(mask_check_layer_experts(m, NULL, 7, 2, &err), ST_EINVAL,
		       "no per-layer counts: as mask_check_experts");
	}
	{
		struct mask *d = mask_dup(m);
		char canon[128];

		ok(d && mask_n_dropped_expert(d) == 3, "dup keeps the expert part");
		d->mlp[0] = 0;
		is_int(mask_check_experts(d, 8, 8, &err), ST_EINVAL, "a dropped mlp is not checked ...");
		has_str(err.msg, "layer 2", "... the next short layer is");
		mask_free(d);
		d = mask_new(5);
		ok(mask_experts_init(d, 4) == 0, "experts_init");
		d->expert[1 * 4 + 2] = 0;
		mask_format(d, canon, sizeof canon);
		ok(!strcmp(canon, "attn=;mlp=;expert=1:2"), "a mask built by hand formats ('%s')", canon);
		mask_free(d);
	}
	mask_free(m);
	return tap_done();
}
