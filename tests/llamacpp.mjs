// llamacpp.mjs: perplexity of a GGUF file in llama.cpp itself (the
// node-llama-cpp package's prebuilt CPU build), for tests/llamacpp.sh
// and tests/families.sh.
//   node llamacpp.mjs PREFIX MODEL.gguf TEXT
// prints {"tokens": N, "nll": X, "ppl": Y}: the text tokenized by
// llama.cpp, BOS first, one window, every token after BOS scored from
// the probabilities llama.cpp computes (F32 KV cache, no flash attention).
//   node llamacpp.mjs PREFIX MODEL.gguf TEXT N
// prints {"greedy": [ids]}: N tokens generated greedily (the most
// probable token each step) after the text as a prompt, BOS first.
import {createRequire} from "module";
import {readFileSync} from "fs";

const [prefix, modelPath, textPath, nGen] = process.argv.slice(2);
const require = createRequire(prefix + "/");
const {getLlama} = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
let toks = Array.from(model.tokenize(readFileSync(textPath, "utf8")));
if (toks[0] !== model.tokens.bos)
	toks = [model.tokens.bos, ...toks];
const ctx = await model.createContext({contextSize: 512, flashAttention: false,
	experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const seq = ctx.getSequence();
const argmax = (probs) => {
	let best = -1, bp = -1;
	for (const [t, p] of probs)
		if (p > bp || (p === bp && t < best)) { best = t; bp = p; }
	return best;
};
if (nGen !== undefined) {
	const out = [];
	let step = toks.map((t, i) => i < toks.length - 1 ? t : [t, {generateNext: {probabilities: true}}]);
	for (let k = 0; k < Number(nGen); k++) {
		const res = await seq.controlledEvaluate(step);
		const next = argmax(res[res.length - 1].next.probabilities);
		out.push(next);
		step = [[next, {generateNext: {probabilities: true}}]];
	}
	console.log(JSON.stringify({greedy: out}));
} else {
	const out = await seq.controlledEvaluate(
		toks.map((t, i) => i < toks.length - 1 ? [t, {generateNext: {probabilities: true}}] : t));
	let nll = 0;
	for (let i = 0; i < toks.length - 1; i++)
		nll -= Math.log(out[i].next.probabilities.get(toks[i + 1]));
	nll /= toks.length - 1;
	console.log(JSON.stringify({tokens: toks.length - 1, nll, ppl: Math.exp(nll)}));
}
await model.dispose();
await llama.dispose();
