// gen.mjs: Parquet files written by DuckDB (the @duckdb/node-api npm
// package), read back by tests/test_parquet.c.  The committed files in
// this folder were made with
//   npm install --prefix /tmp/duckdb @duckdb/node-api@1.5.6-r.1
//   node gen.mjs /tmp/duckdb . 40 small
// and tests/parquet.sh makes larger ones at test time (several row
// groups, every codec).
//   node gen.mjs PREFIX OUTDIR ROWS small|all
// Row i holds values tests/test_parquet.c computes from i (keep the two
// in step): one file per layout the Hugging Face Hub serves.
import {createRequire} from "module";

const [prefix, outdir, rowsArg, set] = process.argv.slice(2);
const rows = Number(rowsArg);
const require = createRequire(prefix + "/");
const {DuckDBInstance} = await import(require.resolve("@duckdb/node-api"));
const db = await DuckDBInstance.create(":memory:");
const c = await db.connect();

const table = `select
	i::BIGINT as id,
	(i * 7 - 50)::INTEGER as n32,
	i % 3 = 0 as flag,
	(i * 0.25 - 1)::DOUBLE as score,
	(i / 10)::DOUBLE as ratio,
	(i * 0.5)::FLOAT as half,
	'ctx ' || i || ' ü€' as ctx,
	['A', 'B', 'C', 'D'][i % 4 + 1] as label,
	case when i % 5 = 0 then null else 'opt' || i end as opt,
	case when i % 4 = 1 then null else i::INTEGER end as optint,
	case when i % 7 = 6 then null
	     else list_transform(range(i % 4), k -> case when i % 11 = 10 and k = 1 then null
	                                                else 'e' || i || '_' || k end) end as endings,
	{'text': ['t' || i || 'a', 't' || i || 'b', 't' || i || 'c'], 'label': ['A', 'B', 'C']} as choices
	from range(${rows}) t(i)`;

// name: [codec, parquet version, row group size]
const small = {
	"snappy.parquet": ["snappy", "v1", 122880],
	"zstd.parquet": ["zstd", "v1", 122880],
	"gzip.parquet": ["gzip", "v1", 122880],
	"none.parquet": ["uncompressed", "v1", 122880],
	"v2.parquet": ["snappy", "v2", 122880],
	"v2_none.parquet": ["uncompressed", "v2", 122880],
};
const all = {
	...small,
	"zstd_v2.parquet": ["zstd", "v2", 122880],
	"groups.parquet": ["snappy", "v1", 2048],
	"groups_v2.parquet": ["zstd", "v2", 2048],
};
// decimals of each physical width, unsigned and narrow integers, a
// column of nulls only, empty lists: four rows given outright
await c.run(`copy (select * from (values
	(1.25::DECIMAL(10,2), (-999.9)::DECIMAL(4,1), (-3.5)::DECIMAL(20,4), 4000000000::UINTEGER,
	 18446744073709551615::UBIGINT, (-128)::TINYINT, NULL::VARCHAR, []::VARCHAR[]),
	((-0.05)::DECIMAL(10,2), 0.1::DECIMAL(4,1), 1234567890123456.7891::DECIMAL(20,4), 0::UINTEGER,
	 0::UBIGINT, 127::TINYINT, NULL, []),
	(0::DECIMAL(10,2), 12.3::DECIMAL(4,1), 0.0001::DECIMAL(20,4), 1::UINTEGER,
	 9223372036854775808::UBIGINT, 0::TINYINT, NULL, []),
	(12345678.99::DECIMAL(10,2), 0::DECIMAL(4,1), (-0.0001)::DECIMAL(20,4), 4294967295::UINTEGER,
	 1::UBIGINT, (-1)::TINYINT, NULL, []))
	t(dec, dec4, dec20, u32, u64, i8, nothing, empty))
	to '${outdir}/types.parquet' (format parquet, compression snappy)`);
for (const [name, [codec, v, rg]] of Object.entries(set === "all" ? all : small))
	await c.run(`copy (${table}) to '${outdir}/${name}'
		(format parquet, compression ${codec}, parquet_version ${v}, row_group_size ${rg})`);
