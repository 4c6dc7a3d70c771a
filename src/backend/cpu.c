/* cpu.c: what the CPU offers the bf16 backend, read with cpuid and xgetbv.
 *
 * A feature counts only when the OS saves its registers too (XCR0): AVX-512
 * needs the opmask and upper-ZMM states, AMX the tile states. Linux also makes
 * a process ask for AMX tiles (arch_prctl); oneDNN does that itself. */
#include "ptune/backend.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

unsigned pt_cpu_caps(void) {
    unsigned a, b, c, d, caps = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* no OSXSAVE: no xgetbv */
    unsigned long long x = xcr0();
    int os_avx = (x & 6) == 6, os_avx512 = os_avx && (x & 0xe0) == 0xe0, os_amx = (x & 0x60000) == 0x60000;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (os_avx && (b & (1u << 5))) caps |= PT_CPU_AVX2;
    /* AVX512F + BW + VL + DQ: what oneDNN calls avx512_core */
    unsigned core = (1u << 16) | (1u << 30) | (1u << 31) | (1u << 17);
    if (os_avx512 && (b & core) == core) caps |= PT_CPU_AVX512;
    if (os_amx && (d & (1u << 22)) && (d & (1u << 24))) caps |= PT_CPU_AMX_BF16; /* amx_bf16, amx_tile */
    unsigned ebx1, ecx1, edx1, eax1;
    __cpuid_count(7, 1, eax1, ebx1, ecx1, edx1);
    if ((caps & PT_CPU_AVX512) && (eax1 & (1u << 5))) caps |= PT_CPU_AVX512_BF16;
    return caps;
}
#else
unsigned pt_cpu_caps(void) { return 0; }
#endif

const char *pt_cpu_flags(void) {
    static char buf[64];
    unsigned c = pt_cpu_caps();
    buf[0] = 0;
    if (c & PT_CPU_AMX_BF16) strcat(buf, "amx_bf16 ");
    if (c & PT_CPU_AVX2) strcat(buf, "avx2 ");
    if (c & PT_CPU_AVX512) strcat(buf, "avx512 ");
    if (c & PT_CPU_AVX512_BF16) strcat(buf, "avx512_bf16 ");
    size_t n = strlen(buf);
    if (n) buf[n - 1] = 0;
    else strcpy(buf, "none of avx2/avx512/amx");
    return buf;
}
