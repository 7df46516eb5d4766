// llamacpp.mjs: perplexity of a GGUF file in llama.cpp itself (the
// node-llama-cpp package's prebuilt CPU build), for tests/llamacpp.sh.
//   node llamacpp.mjs PREFIX MODEL.gguf TEXT
// prints {"tokens": N, "nll": X, "ppl": Y}: the text tokenized by
// llama.cpp, BOS first, one window, every token after BOS scored from
// the probabilities llama.cpp computes (F32 KV cache, no flash attention).
import {createRequire} from "module";
import {readFileSync} from "fs";

const [prefix, modelPath, textPath] = process.argv.slice(2);
const require = createRequire(prefix + "/");
const {getLlama} = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
let toks = Array.from(model.tokenize(readFileSync(textPath, "utf8")));
if (toks[0] !== model.tokens.bos)
	toks = [model.tokens.bos, ...toks];
const ctx = await model.createContext({contextSize: 512, flashAttention: false,
	experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const out = await ctx.getSequence().controlledEvaluate(
	toks.map((t, i) => i < toks.length - 1 ? [t, {generateNext: {probabilities: true}}] : t));
let nll = 0;
for (let i = 0; i < toks.length - 1; i++)
	nll -= Math.log(out[i].next.probabilities.get(toks[i + 1]));
nll /= toks.length - 1;
console.log(JSON.stringify({tokens: toks.length - 1, nll, ppl: Math.exp(nll)}));
await model.dispose();
await llama.dispose();
