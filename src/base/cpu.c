/*
 * cpu: instruction-set detection from cpuid leaf 1 (ecx: fma, avx,
 * osxsave, f16c), leaf 7 subleaf 0 (ebx: avx2, avx512f/bw/vl; ecx:
 * avx512_vnni; edx: amx) and subleaf 1 (eax: avx_vnni, avx512_bf16),
 * and xgetbv(0) for the register state the OS saves: a CPU can have
 * AVX-512 while the kernel leaves ZMM state off, and then the
 * instructions fault.  The table is filled once (pthread_once).
 */
#include "base/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void)
{
	unsigned int lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((unsigned long long)hi << 32) | lo;
}

static void detect(struct cpu_features *f)
{
	unsigned int a, b, c, d, max;
	unsigned long long xcr0 = 0;
	int os_avx, os_avx512;

	max = __get_cpuid_max(0, NULL);
	if (max < 1 || !__get_cpuid(1, &a, &b, &c, &d))
		return;
	if (c & (1u << 27)) /* osxsave: xgetbv is usable */
		xcr0 = xgetbv0();
	os_avx = (xcr0 & 0x6) == 0x6;              /* XMM and YMM */
	os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM0-15 high, ZMM16-31 */
	f->avx = os_avx && (c & (1u << 28));
	f->fma = f->avx && (c & (1u << 12));
	f->f16c = f->avx && (c & (1u << 29));
	if (max < 7)
		return;
	__cpuid_count(7, 0, a, b, c, d);
	f->avx2 = f->avx && (b & (1u << 5));
	f->avx512f = os_avx512 && (b & (1u << 16));
	f->avx512bw = f->avx512f && (b & (1u << 30));
	f->avx512vl = f->avx512f && (b & (1u << 31));
	f->avx512_vnni = f->avx512f && (c & (1u << 11));
	f->amx_bf16 = (d >> 22) & 1;
	f->amx_tile = (d >> 24) & 1;
	f->amx_int8 = (d >> 25) & 1;
	{
		unsigned int sub_max = a;

		if (sub_max >= 1) {
			__cpuid_count(7, 1, a, b, c, d);
			f->avx_vnni = f->avx && (a & (1u << 4));
			f->avx512_bf16 = f->avx512f && (a & (1u << 5));
		}
	}
}
#else
static void detect(struct cpu_features *f)
{
	(void)f;
}
#endif

static struct cpu_features feats;
static pthread_once_t feats_once = PTHREAD_ONCE_INIT;

static void feats_init(void)
{
	detect(&feats);
}

const struct cpu_features *cpu_features(void)
{
	pthread_once(&feats_once, feats_init);
	return &feats;
}

char *cpu_describe(char *buf, size_t cap)
{
	const struct cpu_features *f = cpu_features();
	const struct { const char *name; int on; } tab[] = {
		{ "avx", f->avx }, { "avx2", f->avx2 }, { "fma", f->fma }, { "f16c", f->f16c },
		{ "avx512f", f->avx512f }, { "avx512bw", f->avx512bw }, { "avx512vl", f->avx512vl },
		{ "avx512_vnni", f->avx512_vnni }, { "avx512_bf16", f->avx512_bf16 },
		{ "avx_vnni", f->avx_vnni }, { "amx_tile", f->amx_tile }, { "amx_bf16", f->amx_bf16 },
		{ "amx_int8", f->amx_int8 },
	};
	size_t i, len = 0;

	if (!cap)
		return buf;
	buf[0] = '\0';
	for (i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		int k;

		if (!tab[i].on)
			continue;
		k = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", tab[i].name);
		if (k < 0 || (size_t)k >= cap - len)
			break;
		len += (size_t)k;
	}
	if (!len)
		snprintf(buf, cap, "none");
	return buf;
}
