// peers.mjs: llama.cpp's prefill and decode speed on a GGUF file, through
// the node-llama-cpp package's prebuilt CPU build (bench/peers.sh).
//   node peers.mjs PREFIX MODEL.gguf THREADS PREFILL_TOKENS DECODE_TOKENS ROUNDS
// Prints one line per round: "prefill_tps=X decode_tps=Y".  The prompt is
// PREFILL_TOKENS token ids taken from the model's vocabulary (no text is
// needed: synthetic models have synthetic vocabularies); decode is greedy
// from there, timed per token, median latency.
import {createRequire} from "module";

const [prefix, modelPath, threadsArg, prefillArg, decodeArg, roundsArg] = process.argv.slice(2);
const threads = +threadsArg, nPrefill = +prefillArg, nDecode = +decodeArg, rounds = +roundsArg;
const require = createRequire(prefix + "/");
const {getLlama} = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: threads});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const nVocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
const prompt = [];
for (let i = 0; i < nPrefill; i++)
	prompt.push(3 + ((i * 7919) % (nVocab - 3)));
const ctx = await model.createContext({contextSize: nPrefill + nDecode + 16, batchSize: nPrefill,
	threads: {ideal: threads, min: threads}, flashAttention: false,
	batching: {dispatchSchedule: (dispatch) => dispatch()}});
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
for (let r = 0; r < rounds; r++) {
	const seq = ctx.getSequence();
	let t0 = process.hrtime.bigint();
	await seq.evaluateWithoutGeneratingNewTokens(prompt);
	const prefill = Number(process.hrtime.bigint() - t0) / 1e9;
	const lat = [];
	t0 = process.hrtime.bigint();
	for await (const tok of seq.evaluate([prompt[prompt.length - 1]])) {
		const t1 = process.hrtime.bigint();
		lat.push(Number(t1 - t0) / 1e9);
		t0 = t1;
		if (lat.length >= nDecode || tok === undefined)
			break;
	}
	console.log(`prefill_tps=${(nPrefill / prefill).toFixed(2)} decode_tps=${(1 / median(lat)).toFixed(2)}`);
	seq.dispose();
}
await ctx.dispose();
await model.dispose();
await llama.dispose();
