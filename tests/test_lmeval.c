/*
 * test_lmeval: lm-evaluation-harness's task semantics.  For every task
 * file of data/tasks, the first two items strata builds equal the
 * prompts lm-eval's definitions give, written out here by hand from the
 * documents (on the shared data where it has the task, on documents
 * written here where it has not); HellaSwag's preprocessing; acc_norm
 * on known log-likelihoods (characters without the target delimiter);
 * the few-shot sampler against CPython's random.Random(1234) draws;
 * GSM8K's prompts, its strict and flexible answer extraction on crafted
 * answers (values from Python's re with lm-eval's patterns), and greedy
 * generation against the golden greedy tokens of stories260K.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/evaltask.h"
#include "measure/lmeval.h"
#include "model/model.h"
#include "tap.h"

static const char *srcdir(void)
{
	const char *s = getenv("STRATA_SRCDIR");

	return s && *s ? s : ".";
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	fputs(s, f);
	fclose(f);
}

/* the items of data/tasks/NAME.task, read from data (NULL: the task's
 * own path under the shared assets; skipped when missing) */
static struct mc_item *task_items(const char *name, const char *data, size_t limit, size_t *n,
				  struct mc_task *t)
{
	struct st_err err = { 0, "" };
	struct mc_item *it = NULL;
	char file[4096], labels[4096] = "";
	const char *path = data;
	int rc;

	*n = 0;
	snprintf(file, sizeof file, "%s/data/tasks/%s.task", srcdir(), name);
	if (mc_task_parse(file, t, &err) < 0) {
		ok(0, "%s: %s", name, err.msg);
		return NULL;
	}
	if (!path && !(path = tap_shared(t->path)))
		return NULL;
	if (!data && t->labels[0]) {
		const char *l = tap_shared(t->labels);

		if (!l)
			return NULL;
		snprintf(labels, sizeof labels, "%s", l);
	}
	if (!strcmp(t->format, "docs") || !strcmp(t->format, "generate"))
		rc = mc_read_docs(t, path, labels[0] ? labels : NULL, limit, &it, n, &err);
	else if (!strcmp(t->format, "hellaswag"))
		rc = mc_read_hellaswag(path, limit, &it, n, &err);
	else
		rc = mc_read_jsonl(path, limit, t->delim, &it, n, &err);
	if (rc < 0) {
		ok(0, "%s: %s", name, err.msg);
		return NULL;
	}
	for (size_t i = 0; i < *n; i++)
		it[i].bos = t->bos;
	return it;
}

/* item x is context ctx with choices ch[0..nc) (each with its delimiter) and gold */
static void item_is(const char *name, int k, const struct mc_item *x, const char *ctx,
		    const char *const *ch, int nc, int gold)
{
	int same = x->n_choices == nc;

	ok(x->context && !strcmp(x->context, ctx), "%s item %d: the prompt is lm-eval's", name, k);
	if (!x->context || strcmp(x->context, ctx))
		diag("got:  '%s'\nwant: '%s'", x->context ? x->context : "(none)", ctx);
	for (int j = 0; same && j < nc; j++)
		same = !strcmp(x->choices[j], ch[j]);
	ok(same, "%s item %d: %d choices, each target_delimiter + lm-eval's choice (first '%s')",
	   name, k, nc, x->n_choices ? x->choices[0] : "");
	is_int(x->gold, gold, "%s item %d: gold", name, k);
	is_int(x->bos, MC_BOS_NONE, "%s item %d: no BOS (lm-eval's HF backend default)", name, k);
}

static void test_arc_boolq_copa_obqa(void)
{
	struct mc_task t;
	struct mc_item *it;
	size_t n;

	if ((it = task_items("arc_challenge", NULL, 2, &n, &t))) {
		static const char *c0[] = { " Planetary density will decrease.",
					    " Planetary years will become longer.",
					    " Planetary days will become shorter.",
					    " Planetary gravity will become stronger." };
		static const char *c1[] = { " buildings will be built faster",
					    " buildings will be made safer",
					    " building designs will look nicer",
					    " building materials will be cheaper" };

		is_int((long)n, 2, "arc_challenge: 2 items");
		ok(!strcmp(t.lm_task, "arc_challenge") && !strcmp(t.lm_version, "1.0"),
		   "arc_challenge follows lm-eval's arc_challenge 1.0");
		item_is("arc_challenge", 0, &it[0],
			"Question: An astronomer observes that a planet rotates faster after a meteorite "
			"impact. Which is the most likely effect of this increase in rotation?\nAnswer:",
			c0, 4, 2);
		item_is("arc_challenge", 1, &it[1],
			"Question: A group of engineers wanted to know how different building designs "
			"would respond during an earthquake. They made several models of buildings and "
			"tested each for its ability to withstand earthquake conditions. Which will most "
			"likely result from testing different building designs?\nAnswer:", c1, 4, 1);
		is_int(it[0].norm_skip, 1, "arc: acc_norm skips the target delimiter");
		mc_items_free(it, n);
	}
	if ((it = task_items("arc_easy", NULL, 2, &n, &t))) {
		static const char *c0[] = { " Sunlight is the source of energy for nearly all ecosystems.",
					    " Most ecosystems are found on land instead of in water.",
					    " Carbon dioxide is more available than other gases.",
					    " The producers in all ecosystems are plants." };
		static const char *c1[] = { " safety goggles", " breathing mask", " rubber gloves",
					    " lead apron" };

		item_is("arc_easy", 0, &it[0],
			"Question: Which statement best explains why photosynthesis is the foundation "
			"of most food webs?\nAnswer:", c0, 4, 0);
		item_is("arc_easy", 1, &it[1],
			"Question: Which piece of safety equipment is used to keep mold spores from "
			"entering the respiratory system?\nAnswer:", c1, 4, 1);
		mc_items_free(it, n);
	}
	if ((it = task_items("boolq", NULL, 2, &n, &t))) {
		static const char *c[] = { " no", " yes" };

		item_is("boolq", 0, &it[0],
			"All biomass goes through at least some of these steps: it needs to be grown, "
			"collected, dried, fermented, distilled, and burned. All of these steps require "
			"resources and an infrastructure. The total amount of energy input into the "
			"process compared to the energy released by burning the resulting ethanol fuel "
			"is known as the energy balance (or ``energy returned on energy invested''). "
			"Figures compiled in a 2007 report by National Geographic Magazine point to "
			"modest results for corn ethanol produced in the US: one unit of fossil-fuel "
			"energy is required to create 1.3 energy units from the resulting ethanol. The "
			"energy balance for sugarcane ethanol produced in Brazil is more favorable, with "
			"one unit of fossil-fuel energy required to create 8 from the ethanol. Energy "
			"balance estimates are not easily produced, thus numerous such reports have been "
			"generated that are contradictory. For instance, a separate survey reports that "
			"production of ethanol from sugarcane, which requires a tropical climate to grow "
			"productively, returns from 8 to 9 units of energy for each unit expended, as "
			"compared to corn, which only returns about 1.34 units of fuel energy for each "
			"unit of energy expended. A 2006 University of California Berkeley study, after "
			"analyzing six separate studies, concluded that producing ethanol from corn uses "
			"much less petroleum than producing gasoline.\nQuestion: does ethanol take more "
			"energy make that produces?\nAnswer:", c, 2, 0);
		item_is("boolq", 1, &it[1],
			"Property tax or 'house tax' is a local tax on buildings, along with appurtenant "
			"land. It is and imposed on the Possessor (not the custodian of property as per "
			"1978, 44th amendment of constitution). It resembles the US-type wealth tax and "
			"differs from the excise-type UK rate. The tax power is vested in the states and "
			"is delegated to local bodies, specifying the valuation method, rate band, and "
			"collection procedures. The tax base is the annual rental value (ARV) or "
			"area-based rating. Owner-occupied and other properties not producing rent are "
			"assessed on cost and then converted into ARV by applying a percentage of cost, "
			"usually four percent. Vacant land is generally exempt. Central government "
			"properties are exempt. Instead a 'service charge' is permissible under executive "
			"order. Properties of foreign missions also enjoy tax exemption without requiring "
			"reciprocity. The tax is usually accompanied by service taxes, e.g., water tax, "
			"drainage tax, conservancy (sanitation) tax, lighting tax, all using the same tax "
			"base. The rate structure is flat on rural (panchayat) properties, but in the "
			"urban (municipal) areas it is mildly progressive with about 80% of assessments "
			"falling in the first two brackets.\nQuestion: is house tax and property tax are "
			"same?\nAnswer:", c, 2, 1);
		mc_items_free(it, n);
	}
	if ((it = task_items("copa", NULL, 2, &n, &t))) {
		static const char *c0[] = { " the toilet filled with water.",
					    " water flowed from the spout." };
		static const char *c1[] = { " she poured milk in the bowl.", " she lost her appetite." };

		/* premise "The man turned on the faucet." -> drop "." + " therefore" */
		item_is("copa", 0, &it[0], "The man turned on the faucet therefore", c0, 2, 1);
		item_is("copa", 1, &it[1], "The girl found a bug in her cereal therefore", c1, 2, 1);
		mc_items_free(it, n);
	}
	if ((it = task_items("openbookqa", NULL, 2, &n, &t))) {
		static const char *c0[] = { " make more phone calls", " quit eating lunch out",
					    " buy less with monopoly money", " have lunch with friends" };
		static const char *c1[] = { " a marsh", " a tundra", " the plains", " a desert" };

		item_is("openbookqa", 0, &it[0],
			"A person wants to start saving money so that they can afford a nice vacation "
			"at the end of the year. After looking over their budget and expenses, they "
			"decide the best way to save money is to", c0, 4, 1);
		item_is("openbookqa", 1, &it[1], "There is most likely going to be fog around:", c1, 4, 0);
		mc_items_free(it, n);
	}
}

static void test_piqa_wino_lambada_hellaswag(void)
{
	struct mc_task t;
	struct mc_item *it;
	size_t n;

	if ((it = task_items("piqa", NULL, 2, &n, &t))) {
		static const char *c0[] = {
			" Provide the guinea pig with a cage full of a few inches of bedding made of "
			"ripped paper strips, you will also need to supply it with a water bottle and a "
			"food dish.",
			" Provide the guinea pig with a cage full of a few inches of bedding made of "
			"ripped jeans material, you will also need to supply it with a water bottle and "
			"a food dish." };
		/* sol1 and sol2 as written: their trailing spaces stay */
		static const char *c1[] = { " replace drawer with bobby pin ",
					    " finish, woodgrain with  bobby pin " };

		item_is("piqa", 0, &it[0],
			"Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:",
			c0, 2, 0);
		item_is("piqa", 1, &it[1], "Question: dresser\nAnswer:", c1, 2, 1);
		mc_items_free(it, n);
	}
	if ((it = task_items("winogrande", NULL, 2, &n, &t))) {
		static const char *c[] = { " always got the easier cases.",
					   " always got the easier cases." };

		/* sentence "Sarah was a much better surgeon than Maria so _ always got
		 * the easier cases.", options Sarah / Maria, answer 2 */
		ok(it[0].contexts && !strcmp(it[0].contexts[0],
					     "Sarah was a much better surgeon than Maria so Sarah") &&
		   !strcmp(it[0].contexts[1], "Sarah was a much better surgeon than Maria so Maria"),
		   "winogrande item 0: one context per option, sentence[:idx] + option");
		ok(!strcmp(it[0].choices[0], c[0]) && !strcmp(it[0].choices[1], c[1]),
		   "winogrande item 0: the target ' ' + sentence[idx+1:].strip() after each");
		is_int(it[0].gold, 1, "winogrande item 0: answer 2 is index 1");
		ok(!strcmp(it[1].choices[0], " always got the harder cases.") && it[1].gold == 0,
		   "winogrande item 1: target and gold");
		is_int(it[1].bos, MC_BOS_NONE, "winogrande: no BOS");
		mc_items_free(it, n);
	}
	if ((it = task_items("lambada_openai", NULL, 2, &n, &t))) {
		ok(!strcmp(it[0].context,
			   "In my palm is a clear stone, and inside it is a small ivory statuette. A "
			   "guardian angel.\n\n\"Figured if you're going to be out at night getting hit "
			   "by cars, you might as well have some backup.\"\n\nI look at him, feeling "
			   "stunned. Like this is some sort of sign. But as I stare at Harlin, his mouth "
			   "curved in a confident grin, I don't care about") &&
		   !strcmp(it[0].choices[0], " signs"),
		   "lambada_openai item 0: text without its last word, target ' signs'");
		ok(!strcmp(it[1].choices[0], " Shane") && strlen(it[1].context) > 30 &&
		   !strcmp(it[1].context + strlen(it[1].context) - 31, "\"I can make it there on my own,"),
		   "lambada_openai item 1: ends '\"I can make it there on my own,', target ' Shane'");
		mc_items_free(it, n);
	}
	if ((it = task_items("hellaswag_val", NULL, 2, &n, &t))) {
		static const char *c0[] = { " is using wrap to wrap a pair of skis.",
					    " is ripping level tiles off.",
					    " is holding a rubik's cube.",
					    " starts pulling up roofing on a roof." };
		static const char *c1[] = { " swings and lands in her arms.",
					    " pulls the barbell forward.",
					    " pulls a rope attached to the barbell.",
					    " stands and lifts the weight over her head." };

		/* activity_label "Roof shingle removal", ctx_a "A man is sitting on a
		 * roof.", ctx_b "he": ctx_b.capitalize() is "He" */
		item_is("hellaswag", 0, &it[0], "Roof shingle removal: A man is sitting on a roof. He",
			c0, 4, 3);
		item_is("hellaswag", 1, &it[1],
			"Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. "
			"The lady", c1, 4, 3);
		mc_items_free(it, n);
	}
	if ((it = task_items("hellaswag_val", NULL, 3506, &n, &t)) && n == 3506) {
		/* a WikiHow item: bracketed text removed, then "  " -> " " */
		ok(!strcmp(it[3505].context,
			   "Family Life: How to entertain a toddler. Ask the toddler what he or she "
			   "would like to do instead of doing what you would like to do.. Visit a site "
			   "like to find loads of creative activities for toddlers and preschoolers.. "
			   "Choose small, simple games like candy land or chutes and ladders."),
		   "hellaswag item 3505 (WikiHow): '[www.kiddio.org]' removed, no ctx_b: '%s'",
		   it[3505].context);
		mc_items_free(it, n);
	} else if (it)
		mc_items_free(it, n);
}

/* tasks whose data the shared assets lack: documents in the Hub's form */
static void test_hub_form_tasks(void)
{
	const char *dir = tap_tmpdir("test_lmeval");
	struct mc_task t;
	struct mc_item *it;
	size_t n;
	char p[4200];

	snprintf(p, sizeof p, "%s/siqa.jsonl", dir);
	write_file(p, "{\"context\": \"Tracy didn't go home that evening and resisted Riley's "
		   "attacks.\", \"question\": \"What does Tracy need to do before this?\", "
		   "\"answerA\": \"make a new plan\", \"answerB\": \"Go home and see Riley\", "
		   "\"answerC\": \"Find somewhere to go\", \"label\": \"3\"}\n"
		   "{\"context\": \"Sydney walked past a homeless woman.\", \"question\": \"How "
		   "would you describe Sydney?\", \"answerA\": \"sympathetic\", \"answerB\": "
		   "\"like a person who was unable to help\", \"answerC\": \"incredulous\", "
		   "\"label\": \"1\"}\n");
	if ((it = task_items("siqa", p, 0, &n, &t))) {
		static const char *c0[] = { " make a new plan", " Go home and see Riley",
					    " Find somewhere to go" };
		static const char *c1[] = { " sympathetic", " like a person who was unable to help",
					    " incredulous" };

		item_is("siqa", 0, &it[0], "Q: Tracy didn't go home that evening and resisted Riley's "
			"attacks. What does Tracy need to do before this?\nA:", c0, 3, 2);
		item_is("siqa", 1, &it[1], "Q: Sydney walked past a homeless woman. How would you "
			"describe Sydney?\nA:", c1, 3, 0);
		mc_items_free(it, n);
	}
	snprintf(p, sizeof p, "%s/csqa.jsonl", dir);
	write_file(p, "{\"question\": \" A revolving door is convenient for two direction travel, "
		   "but it also serves as a security measure at a what? \", \"choices\": {\"label\": "
		   "[\"A\", \"B\", \"C\", \"D\", \"E\"], \"text\": [\"bank\", \"library\", "
		   "\"department store\", \"mall\", \"new york\"]}, \"answerKey\": \"A\"}\n"
		   "{\"question\": \"What do people aim to do at work?\", \"choices\": {\"label\": "
		   "[\"A\", \"B\", \"C\", \"D\", \"E\"], \"text\": [\"complete job\", \"learn from "
		   "each other\", \"kill animals\", \"wear hats\", \"talk to each other\"]}, "
		   "\"answerKey\": \"A\"}\n");
	if ((it = task_items("commonsense_qa", p, 0, &n, &t))) {
		static const char *c[] = { " A", " B", " C", " D", " E" };

		item_is("commonsense_qa", 0, &it[0],
			"Question: A revolving door is convenient for two direction travel, but it also "
			"serves as a security measure at a what?\nA. bank\nB. library\nC. department "
			"store\nD. mall\nE. new york\nAnswer:", c, 5, 0);
		item_is("commonsense_qa", 1, &it[1],
			"Question: What do people aim to do at work?\nA. complete job\nB. learn from each "
			"other\nC. kill animals\nD. wear hats\nE. talk to each other\nAnswer:", c, 5, 0);
		mc_items_free(it, n);
	}
	snprintf(p, sizeof p, "%s/rte.jsonl", dir);
	write_file(p, "{\"sentence1\": \"No Weapons of Mass Destruction Found in Iraq Yet.\", "
		   "\"sentence2\": \"Weapons of Mass Destruction Found in Iraq.\", \"label\": 1}\n"
		   "{\"sentence1\": \"A place of sorrow, after Pope John Paul II died, became a "
		   "place of celebration.\", \"sentence2\": \"Pope Benedict XVI is the new leader of "
		   "the Roman Catholic Church.\", \"label\": 0}\n");
	if ((it = task_items("rte", p, 0, &n, &t))) {
		static const char *c[] = { " True", " False" };

		item_is("rte", 0, &it[0], "No Weapons of Mass Destruction Found in Iraq Yet.\nQuestion: "
			"Weapons of Mass Destruction Found in Iraq. True or False?\nAnswer:", c, 2, 1);
		item_is("rte", 1, &it[1], "A place of sorrow, after Pope John Paul II died, became a "
			"place of celebration.\nQuestion: Pope Benedict XVI is the new leader of the "
			"Roman Catholic Church. True or False?\nAnswer:", c, 2, 0);
		mc_items_free(it, n);
	}
	/* a missing field is named, with file and line */
	snprintf(p, sizeof p, "%s/bad.jsonl", dir);
	write_file(p, "{\"sentence1\": \"a\", \"label\": 0}\n");
	{
		char file[4096];
		struct st_err err = { 0, "" };

		snprintf(file, sizeof file, "%s/data/tasks/rte.task", srcdir());
		if (mc_task_parse(file, &t, &err) == 0) {
			ok(mc_read_docs(&t, p, NULL, 0, &it, &n, &err) == ST_EFORMAT,
			   "a document without sentence2 is rejected");
			has_str(err.msg, "bad.jsonl:1: field 'sentence2'", "... naming file, line and field");
		}
	}
}

static void test_preprocess(void)
{
	char *s;

	s = lmeval_hellaswag_preprocess("  How to x [title] Do y [step] now.  [a]b  c ");
	ok(s && !strcmp(s, "How to x. Do y now. b c"), "preprocess: [title], brackets, spaces: '%s'", s);
	free(s);
	s = lmeval_hellaswag_preprocess("a [b");
	ok(s && !strcmp(s, "a [b"), "an unclosed '[' stays");
	free(s);
	s = lmeval_hellaswag_preprocess("a   b");
	ok(s && !strcmp(s, "a  b"), "'  ' -> ' ' is one pass (three spaces leave two)");
	free(s);
	s = lmeval_hellaswag_query("Label", "Ctx a.", "the MAN");
	ok(s && !strcmp(s, "Label: Ctx a. The man"), "capitalize: first upper, rest lower: '%s'", s);
	free(s);
	s = lmeval_hellaswag_query("Label", "Ctx a.", "");
	ok(s && !strcmp(s, "Label: Ctx a."), "empty ctx_b: the trailing space is stripped");
	free(s);
	s = lmeval_hellaswag_line("Health: How to x. Do y. They");
	ok(s && !strcmp(s, "Health: How to x. Do y. They"), "a capitalised last sentence is ctx_a");
	free(s);
}

static void test_acc_norm(void)
{
	/* choice " ab" (2 characters) -3 nats, " abcd" (4) -5: acc takes the
	 * first, acc_norm (-1.5 against -1.25) the second; counting the
	 * delimiter's byte too would tie them at -1 (and give the first) */
	static const char *ch[] = { " ab", " abcd" };
	/* " \xc3\xa9\xc3\xa9" is 2 characters in 4 bytes: -2.6 / 2 = -1.3
	 * loses to " xyz" -3.3 / 3 = -1.1 (gold); by bytes it would win (-0.65) */
	static const char *ch2[] = { " \xc3\xa9\xc3\xa9", " xyz" };
	struct mc_item it[2] = {
		{ (char *)"ctx", 1, 2, (char **)ch, NULL, 1, MC_BOS_NONE },
		{ (char *)"ctx", 1, 2, (char **)ch2, NULL, 1, MC_BOS_NONE },
	};
	double ll[4] = { -3, -5, -2.6, -3.3 };
	struct mc_result r;

	mc_score(it, 1, ll, &r);
	is_close(r.acc, 0, 0, "acc: the larger log-likelihood (choice 0, not gold)");
	is_close(r.acc_norm, 1, 0, "acc_norm: ll / characters without the delimiter picks gold");
	it[0].norm_skip = 0;
	mc_score(it, 1, ll, &r);
	is_close(r.acc_norm, 0, 0, "with the delimiter counted it would tie (first wins)");
	mc_score(it + 1, 1, ll + 2, &r);
	is_close(r.acc_norm, 1, 0, "characters are code points: 2 for a 4-byte choice");
	is_int((long)r.n, 1, "n");
}

static void test_sampler(void)
{
	/* CPython: random.Random(1234).getrandbits(32) three times, and
	 * sample(range(100), 10), sample(range(10), 5) twice, sample(range(40), 26) */
	static const uint32_t u[3] = { 4150886329u, 3342196574u, 1892932127u };
	static const size_t s100[10] = { 99, 56, 14, 0, 11, 74, 4, 85, 88, 10 };
	static const size_t s10a[5] = { 7, 1, 0, 9, 4 }, s10b[5] = { 0, 1, 8, 6, 2 };
	static const size_t s40[26] = { 28, 7, 0, 5, 2, 36, 6, 22, 15, 37, 30, 25, 29,
					11, 20, 19, 31, 24, 14, 4, 35, 34, 3, 27, 23, 21 };
	static const size_t s7473[5] = { 6374, 3610, 957, 61, 742 };
	struct py_random r;
	size_t got[26];
	int i, same;

	py_random_seed(&r, 1234);
	for (i = 0, same = 1; i < 3; i++)
		same &= py_random_u32(&r) == u[i];
	ok(same, "MT19937 seeded as random.seed(1234): getrandbits(32) x 3");
	py_random_seed(&r, 1234);
	ok(py_random_sample(&r, 100, 10, got) == 0 && !memcmp(got, s100, sizeof s100),
	   "sample(range(100), 10): the set method");
	py_random_seed(&r, 1234);
	py_random_sample(&r, 10, 5, got);
	same = !memcmp(got, s10a, sizeof s10a);
	py_random_sample(&r, 10, 5, got);
	ok(same && !memcmp(got, s10b, sizeof s10b), "sample(range(10), 5) twice: the pool method, "
	   "one generator");
	py_random_seed(&r, 1234);
	ok(py_random_sample(&r, 40, 26, got) == 0 && !memcmp(got, s40, sizeof s40),
	   "sample(range(40), 26): the pool method (setsize 21 + 4^4)");
	py_random_seed(&r, 1234);
	ok(py_random_sample(&r, 7473, 5, got) == 0 && !memcmp(got, s7473, sizeof s7473),
	   "sample(range(7473), 5): GSM8K's train split");
	py_random_seed(&r, (1ull << 40) + 5);
	is_int((long)py_random_u32(&r), 2166296868L, "a seed over 32 bits: two key words");
	ok(py_random_sample(&r, 3, 4, got) < 0, "k > n is refused");
}

static void test_fewshot(void)
{
	const char *dir = tap_tmpdir("test_lmeval_fs");
	struct st_err err = { 0, "" };
	struct mc_task t;
	struct mc_item *it = NULL, *fs = NULL;
	size_t n = 0, nfs = 0;
	char p[4200], q[4200];

	memset(&t, 0, sizeof t);
	strcpy(t.format, "docs");
	strcpy(t.text, "Q{i}?");
	strcpy(t.choices, "[\"x{i}\", \"y{i}\"]");
	strcpy(t.gold, "g");
	strcpy(t.target_delim, " ");
	snprintf(p, sizeof p, "%s/docs.jsonl", dir);
	write_file(p, "{\"i\": 0, \"g\": 0}\n{\"i\": 1, \"g\": 1}\n{\"i\": 2, \"g\": 0}\n"
		   "{\"i\": 3, \"g\": 1}\n{\"i\": 4, \"g\": 0}\n{\"i\": 5, \"g\": 1}\n");
	snprintf(q, sizeof q, "%s/train.jsonl", dir);
	write_file(q, "{\"i\": 10, \"g\": 0}\n{\"i\": 11, \"g\": 1}\n{\"i\": 12, \"g\": 1}\n");
	/* same split: random.Random(1234), each item sample(range(6), 3) in
	 * turn, the item itself dropped: item 0 [3, 0, 4] -> 3, 4; item 1
	 * [0, 4, 5] -> 0, 4 */
	if (mc_read_docs(&t, p, NULL, 0, &it, &n, &err) == 0 &&
	    mc_read_docs(&t, p, NULL, 0, &fs, &nfs, &err) == 0) {
		is_int(mc_apply_fewshot(it, n, fs, nfs, 2, 1, 0, 1234, "", "\n\n", &err), 0,
		       "2 shots from the same split");
		ok(!strcmp(it[0].context, "Q3? y3\n\nQ4? x4\n\nQ0?"), "item 0: '%s'", it[0].context);
		ok(!strcmp(it[1].context, "Q0? x0\n\nQ4? x4\n\nQ1?"), "item 1: '%s'", it[1].context);
		ok(!strcmp(it[2].context, "Q5? y5\n\nQ0? x0\n\nQ2?"), "item 2: '%s'", it[2].context);
		ok(!strcmp(it[0].choices[1], " y0"), "choices are untouched");
	}
	mc_items_free(it, n);
	mc_items_free(fs, nfs);
	/* another split: sample(range(3), 2) per item: [1, 0] then [0, 2] */
	if (mc_read_docs(&t, p, NULL, 2, &it, &n, &err) == 0 &&
	    mc_read_docs(&t, q, NULL, 0, &fs, &nfs, &err) == 0) {
		is_int(mc_apply_fewshot(it, n, fs, nfs, 2, 0, 0, 1234, "D\n\n", "\n\n", &err), 0,
		       "2 shots from train");
		ok(!strcmp(it[0].context, "D\n\nQ11? y11\n\nQ10? x10\n\nQ0?"), "item 0: '%s'",
		   it[0].context);
		ok(!strcmp(it[1].context, "D\n\nQ10? x10\n\nQ12? y12\n\nQ1?"), "item 1: '%s'",
		   it[1].context);
		mc_items_free(it, n);
		it = NULL;
		mc_read_docs(&t, p, NULL, 1, &it, &n, &err);
		is_int(mc_apply_fewshot(it, n, fs, nfs, 2, 0, 1, 0, "", "\n\n", &err), 0, "first_n");
		ok(!strcmp(it[0].context, "Q10? x10\n\nQ11? y11\n\nQ0?"), "first_n: '%s'",
		   it[0].context);
		ok(mc_apply_fewshot(it, n, fs, nfs, 4, 0, 0, 1234, "", "\n\n", &err) == ST_EINVAL,
		   "more shots than examples is refused");
		has_str(err.msg, "3 few-shot examples for 4 shots", "... saying how many");
	}
	mc_items_free(it, n);
	mc_items_free(fs, nfs);
}

/* extraction filter f on resp gives want */
static void extract_is(int (*f)(const char *, char **), const char *name, const char *resp,
		       const char *want)
{
	char *got = NULL;

	ok(f(resp, &got) == 0 && !strcmp(got, want), "%s('%s') is '%s' (got '%s')", name, resp, want,
	   got ? got : "(null)");
	free(got);
}

static void test_gsm8k(void)
{
	static const struct { const char *resp, *strict, *flexible, *norm; } cases[] = {
		{ "The answer is 5.\n#### 1,234", "1,234", "1,234", "1234" },
		{ "so #### -3.5 and #### 7", "-3.5", "7", NULL },
		{ "no hash 42", "[invalid]", "42", NULL },
		{ "I have 3 apples and 12 pears.", "[invalid]", "12", NULL },
		{ "It costs $1,000.", "[invalid]", "$1,000.", "1000" },
		{ "x -7 y", "[invalid]", "-7", NULL },  /* the second group */
		{ "no numbers", "[invalid]", "[invalid]", NULL },
		{ "a 5 b 6", "[invalid]", "6", NULL },
		{ "#### 18.", "18.", "18.", "18" },
	};
	struct gsm8k_score sc;
	struct mc_task t;
	struct mc_item *it;
	char *s = NULL;
	size_t n, i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		extract_is(lmeval_gsm8k_strict, "strict-match", cases[i].resp, cases[i].strict);
		extract_is(lmeval_gsm8k_flexible, "flexible-extract", cases[i].resp, cases[i].flexible);
		if (cases[i].norm) {
			ok(lmeval_gsm8k_normalize(cases[i].flexible, &s) == 0 &&
			   !strcmp(s, cases[i].norm), "normalize('%s') is '%s'", cases[i].flexible,
			   cases[i].norm);
			free(s);
		}
	}
	ok(lmeval_gsm8k_normalize("She makes $<<9*2=18>>18.\n#### 18", &s) == 0 && !strcmp(s, "18"),
	   "a target normalizes to what follows the last '#### '");
	free(s);
	ok(lmeval_gsm8k_normalize("#### 5.\n", &s) == 0 && !strcmp(s, "5\n"),
	   "'\\.$' also matches before a final newline (Python's $)");
	free(s);
	ok(lmeval_gsm8k_score("so 9 * 2 = 18 #### 18", "x\n#### 18", &sc) == 0 && sc.strict &&
	   sc.flexible, "'#### 18' is right by both filters");
	ok(lmeval_gsm8k_score("She makes 18 dollars.", "x\n#### 18", &sc) == 0 && !sc.strict &&
	   sc.flexible, "'18 dollars.' only by flexible-extract");
	ok(lmeval_gsm8k_score("#### 1,8", "x\n#### 18", &sc) == 0 && sc.strict && sc.flexible,
	   "commas are ignored ('1,8' equals '18', as lm-eval)");
	ok(lmeval_gsm8k_score("#### 17", "x\n#### 18", &sc) == 0 && !sc.strict && !sc.flexible,
	   "a wrong number is wrong");

	if ((it = task_items("gsm8k", NULL, 2, &n, &t))) {
		static const char *c0[] = { " Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
					    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u2019s "
					    "market.\n#### 18" };
		static const char *c1[] = { " It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total "
					    "amount of fabric is 2+1=<<2+1=3>>3 bolts of fabric\n#### 3" };

		ok(!strcmp(t.lm_task, "gsm8k") && !strcmp(t.lm_version, "3.0") && t.max_gen == 256 &&
		   !strcmp(t.until, "[\"Question:\", \"</s>\", \"<|im_end|>\"]"),
		   "gsm8k follows lm-eval's gsm8k 3.0: until Question:, </s>, <|im_end|>; 256 tokens");
		item_is("gsm8k", 0, &it[0], "Question: Janet\u2019s ducks lay 16 eggs per day. She eats "
			"three for breakfast every morning and bakes muffins for her friends every day "
			"with four. She sells the remainder at the farmers' market daily for $2 per fresh "
			"duck egg. How much in dollars does she make every day at the farmers' market?"
			"\nAnswer:", c0, 1, 0);
		item_is("gsm8k", 1, &it[1], "Question: A robe takes 2 bolts of blue fiber and half that "
			"much white fiber.  How many bolts in total does it take?\nAnswer:", c1, 1, 0);
		mc_items_free(it, n);
	}
}

/* greedy generation: stories260K's golden 40 greedy tokens after BOS +
 * "Once upon a time", then the same cut by a stop string */
static void test_generate(void)
{
	const char *mp = tap_shared("models/stories260K/stories260K.gguf");
	static const char *gold = ", there was a little girl named Lily. She loved to play outside in "
				  "the park. One day, she saw a big, red ball.";
	struct st_err err = { 0, "" };
	struct model *m = NULL;
	struct mc_item it[1];
	const char *stops[2] = { "Lily", "park" };
	char *out[1];

	if (!mp || model_load(mp, NULL, &m, &err) < 0) {
		ok(mp == NULL, "load stories260K: %s", err.msg);
		return;
	}
	memset(it, 0, sizeof it);
	it[0].context = (char *)"Once upon a time";
	it[0].bos = MC_BOS_ADD;
	is_int(lmeval_generate(m, NULL, it, 1, 256, 40, 1, NULL, 0, out, NULL, NULL, &err), 0,
	       "generate 40 tokens: %s", err.msg);
	ok(!strcmp(out[0], gold), "the golden greedy continuation: '%s'", out[0]);
	free(out[0]);
	is_int(lmeval_generate(m, NULL, it, 1, 256, 40, 1, stops, 2, out, NULL, NULL, &err), 0,
	       "generate until 'Lily' or 'park'");
	ok(!strcmp(out[0], ", there was a little girl named "), "cut before the first stop: '%s'",
	   out[0]);
	free(out[0]);
	ok(lmeval_generate(m, NULL, it, 1, 40, 40, 1, NULL, 0, out, NULL, NULL, &err) == ST_EINVAL,
	   "no room for the generation is refused");
	{	/* many at once: the same texts as one at a time */
		static const char *ctxs[7] = { "Once upon a time", "The cat", "Tom and Sue went to",
					       "One day, a big dog", "She was sad because",
					       "Lily wanted to play with her ball. She",
					       "A little bird sat on a tree. It" };
		struct mc_item many[7];
		char *one[7], *par[7];
		const char *dot[1] = { "." };
		int k, same;

		memset(many, 0, sizeof many);
		for (k = 0; k < 7; k++) {
			many[k].context = (char *)ctxs[k];
			many[k].bos = MC_BOS_ADD;
		}
		err.msg[0] = 0;
		is_int(lmeval_generate(m, NULL, many, 7, 256, 30, 1, dot, 1, one, NULL, NULL, &err), 0,
		       "7 items one at a time: %s", err.msg);
		for (int np = 2; np <= 7; np += 5) {
			is_int(lmeval_generate(m, NULL, many, 7, 256, 30, np, dot, 1, par, NULL, NULL, &err),
			       0, "7 items, %d at once: %s", np, err.msg);
			for (k = 0, same = 0; k < 7; k++) {
				same += par[k] && one[k] && !strcmp(par[k], one[k]);
				if (par[k] && one[k] && strcmp(par[k], one[k]))
					diag("item %d: '%s' vs '%s'", k, par[k], one[k]);
				free(par[k]);
			}
			is_int(same, 7, "... every text equals the one-at-a-time one");
		}
		for (k = 0; k < 7; k++)
			free(one[k]);
	}
	model_free(m);
}

/* documents from a Parquet file written by DuckDB (tests/data/parquet:
 * row i has ctx "ctx i \u00fc\u20ac", label A-D by i % 4, choices.text
 * ["ti" "a", .. "c"]), and HellaSwag's Hub rows through hellaswag_hub.task */
static void test_parquet_docs(void)
{
	const char *dir = tap_tmpdir("test_lmeval_pq");
	struct st_err err = { 0, "" };
	struct mc_item *it = NULL;
	struct mc_task t;
	size_t n = 0;
	char p[4200];

	memset(&t, 0, sizeof t);
	strcpy(t.format, "docs");
	strcpy(t.text, "Q: {ctx}\nC: {choices.text.2} ({choices.label.2}), id {id}\nA:");
	strcpy(t.choices, "choices.text");
	strcpy(t.gold, "label");
	strcpy(t.target_delim, " ");
	snprintf(p, sizeof p, "%s/tests/data/parquet/snappy.parquet", srcdir());
	is_int(mc_read_docs(&t, p, NULL, 3, &it, &n, &err), 0, "read 3 rows of a parquet file: %s",
	       err.msg);
	if (n == 3) {
		static const char *c1[] = { " t1a", " t1b", " t1c" };

		ok(!strcmp(it[0].context, "Q: ctx 0 \xc3\xbc\xe2\x82\xac\nC: t0c (C), id 0\nA:"),
		   "row 0: columns, a nested list element and a number as text: '%s'", it[0].context);
		ok(!strcmp(it[1].choices[0], c1[0]) && !strcmp(it[1].choices[2], c1[2]) &&
		   it[1].n_choices == 3, "row 1: the list column choices.text as choices");
		is_int(it[1].gold, 1, "row 1: label B is index 1");
		is_int(it[2].gold, 2, "row 2: label C is index 2");
	}
	mc_items_free(it, n);
	ok(mc_read_docs(&t, p, NULL, 0, &it, &n, &err) == ST_EFORMAT,
	   "row 3's label D has no fourth choice: rejected");
	has_str(err.msg, "snappy.parquet: row 4: gold 3 is not a choice index (0-2)",
		"... naming the file and the row");
	strcpy(t.text, "{nosuch}");
	ok(mc_read_docs(&t, p, NULL, 1, &it, &n, &err) == ST_EFORMAT, "a missing column is rejected");
	has_str(err.msg, "row 1: field 'nosuch'", "... naming the row and the field");

	/* the Hub's HellaSwag rows (as the parquet file holds them) */
	snprintf(p, sizeof p, "%s/hs.jsonl", dir);
	write_file(p, "{\"activity_label\": \"Roof shingle removal\", \"ctx_a\": \"A man is sitting "
		   "on a roof.\", \"ctx_b\": \"he\", \"endings\": [\"is using wrap to wrap a pair of "
		   "skis.\", \"is ripping level tiles off.\", \"is holding a rubik's cube.\", \"starts "
		   "pulling up roofing on a roof.\"], \"label\": \"3\"}\n"
		   "{\"activity_label\": \"Home and Garden\", \"ctx_a\": \"[header] How to x [title] "
		   "Buy a [b]  mat.\", \"ctx_b\": \"\", \"endings\": [\"[step] Lay  it.\", \"b\"], "
		   "\"label\": \"0\"}\n");
	{
		struct mc_task h;

		it = task_items("hellaswag_hub", p, 0, &n, &h);
		if (it && n == 2) {
			static const char *c0[] = { " is using wrap to wrap a pair of skis.",
						    " is ripping level tiles off.",
						    " is holding a rubik's cube.",
						    " starts pulling up roofing on a roof." };
			/* preprocess("[step] Lay  it.") is " Lay it.": the strip comes
			 * before the bracket goes, so its space stays */
			static const char *c1[] = { "  Lay it.", " b" };

			item_is("hellaswag_hub", 0, &it[0],
				"Roof shingle removal: A man is sitting on a roof. He", c0, 4, 3);
			/* preprocess("Home and Garden: [header] How to x [title] Buy a [b]  mat. "):
			 * strip, " [title]" -> ". ", brackets out (leaving three spaces
			 * after "a"), then one pass of "  " -> " " leaves two */
			item_is("hellaswag_hub", 1, &it[1], "Home and Garden: How to x. Buy a  mat.",
				c1, 2, 0);
		}
		mc_items_free(it, n);
	}
}

int main(void)
{
	test_arc_boolq_copa_obqa();
	test_piqa_wino_lambada_hellaswag();
	test_hub_form_tasks();
	test_preprocess();
	test_acc_norm();
	test_sampler();
	test_fewshot();
	test_gsm8k();
	test_generate();
	test_parquet_docs();
	return tap_done();
}
