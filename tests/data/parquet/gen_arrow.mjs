// gen_arrow.mjs: the rows of gen.mjs written by a second independent
// writer, the Rust Apache Arrow Parquet writer (the parquet-wasm npm
// package, with apache-arrow to build the table), whose defaults are
// those of the Arrow writers the Hugging Face Hub's converter uses:
// dictionary pages that fall back to PLAIN when they fill, pages split
// by size.  Small page and dictionary limits force many pages per
// column chunk and the fallback even on a few rows.
//   node gen_arrow.mjs PREFIX OUTDIR ROWS
// The committed arrow_*.parquet were made with ROWS 40 (see gen.mjs).
import {createRequire} from "module";
import {writeFileSync} from "fs";

const [prefix, outdir, rowsArg] = process.argv.slice(2);
const rows = Number(rowsArg);
const require = createRequire(prefix + "/");
const arrow = await import(require.resolve("apache-arrow"));
const pw = require(require.resolve("parquet-wasm/node"));
const {Field, List, Struct, Utf8, Int32, Int64, Bool, Float64, Float32} = arrow;

const str = () => new Utf8();
const list = () => new List(new Field("element", str(), true));
const cols = {id: [], n32: [], flag: [], score: [], ratio: [], half: [], ctx: [], label: [],
	opt: [], optint: [], endings: [], choices: []};
for (let i = 0; i < rows; i++) {
	cols.id.push(BigInt(i));
	cols.n32.push(i * 7 - 50);
	cols.flag.push(i % 3 === 0);
	cols.score.push(i * 0.25 - 1);
	cols.ratio.push(i / 10);
	cols.half.push(i * 0.5);
	cols.ctx.push(`ctx ${i} ü€`);
	cols.label.push("ABCD"[i % 4]);
	cols.opt.push(i % 5 === 0 ? null : `opt${i}`);
	cols.optint.push(i % 4 === 1 ? null : i);
	cols.endings.push(i % 7 === 6 ? null
		: Array.from({length: i % 4}, (_, k) => i % 11 === 10 && k === 1 ? null : `e${i}_${k}`));
	cols.choices.push({text: [`t${i}a`, `t${i}b`, `t${i}c`], label: ["A", "B", "C"]});
}
const types = {id: new Int64(), n32: new Int32(), flag: new Bool(), score: new Float64(),
	ratio: new Float64(), half: new Float32(), ctx: str(), label: str(), opt: str(), optint: new Int32(),
	endings: list(),
	choices: new Struct([new Field("text", list(), true), new Field("label", list(), true)])};
const vecs = {};
for (const k of Object.keys(cols))
	vecs[k] = arrow.vectorFromArray(cols[k], types[k]);
const ipc = arrow.tableToIPC(new arrow.Table(vecs), "stream");

// name: [codec, writer version]
const files = {
	"arrow_pages.parquet": [pw.Compression.SNAPPY, pw.WriterVersion.V1],
	"arrow_pages_v2.parquet": [pw.Compression.ZSTD, pw.WriterVersion.V2],
};
for (const [name, [codec, v]] of Object.entries(files)) {
	const props = new pw.WriterPropertiesBuilder()
		.setCompression(codec)
		.setWriterVersion(v)
		.setDataPageSizeLimit(64)
		.setDictionaryPageSizeLimit(64)
		.setStatisticsEnabled(pw.EnabledStatistics.None)
		.setMaxRowGroupSize(Math.max(16, Math.ceil(rows / 3)))
		.build();
	// writeParquet takes the table over: one per file
	writeFileSync(`${outdir}/${name}`, pw.writeParquet(pw.Table.fromIPCStream(ipc), props));
}
