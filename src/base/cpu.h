/*
 * cpu: the instruction-set extensions this CPU has and the operating
 * system lets programs use, read once from cpuid and xgetbv (so gcc and
 * clang build it alike; __builtin_cpu_supports differs between them).
 * On a CPU that is not x86-64 every flag is 0.
 */
#ifndef STRATA_CPU_H
#define STRATA_CPU_H

#include <stddef.h>

struct cpu_features {
	int avx, avx2, fma, f16c;      /* AVX state (YMM) enabled by the OS */
	int avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16; /* + ZMM/opmask state */
	int avx_vnni;                  /* VEX-coded VNNI (Alder Lake and later) */
	int amx_tile, amx_bf16, amx_int8; /* the CPU has them; tile state may still need arch_prctl */
};

/*
 * The features of this CPU, read on first call; the pointer is to a
 * static table that lives as long as the program.  Thread-safe.
 */
const struct cpu_features *cpu_features(void);

/*
 * Writes the detected features as one line of names separated by
 * spaces ("avx avx2 fma f16c avx512f ..."; "none" when there are none)
 * into buf (cap bytes, always terminated).  Returns buf.
 */
char *cpu_describe(char *buf, size_t cap);

#endif
