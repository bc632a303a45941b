/* streamhsm: byte-map kernels for broadcast (private).
 *
 * hsm_map(states, n, lut) rewrites every byte of states[0..n) as lut[byte]. broadcast builds the
 * 256-entry lut of one event column (lut[code] = next_state[code, event]; the free code and every
 * code the machine does not use map to themselves) and calls this.
 *
 * The kernel is chosen at run time from the CPU's features (as numpy does): AVX2 (32 bytes per
 * step), SSSE3 (16 bytes), or the portable scalar loop. No -march flag is needed: the SIMD
 * functions carry their own target attributes and run only if the CPU supports them.
 *
 * The SIMD kernels are a two-level lookup: the high nibble of a code selects one of 16 blocks of
 * the lut, pshufb looks the low nibble up in that block. Blocks that map every code to itself are
 * skipped, so a machine with at most 16 states (codes 0..15, plus the free code 255) costs one
 * pshufb per 16 or 32 slots. The result is exactly lut[byte] for every byte value.
 */
#ifndef STREAMHSM_SIMD_H
#define STREAMHSM_SIMD_H

#include <stddef.h>
#include <stdint.h>

#define HSM_SIMD_SCALAR 0
#define HSM_SIMD_SSSE3 1
#define HSM_SIMD_AVX2 2

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define STREAMHSM_X86_SIMD 1
#include <immintrin.h>
#else
#define STREAMHSM_X86_SIMD 0
#endif

/* Highest kernel the CPU supports (-1: not detected yet) and the cap a test may set. */
static int hsm_simd_detected = -1;
static int hsm_simd_cap = HSM_SIMD_AVX2;

static int hsm_simd_detect(void) {
    if (hsm_simd_detected < 0) {
        int level = HSM_SIMD_SCALAR;
#if STREAMHSM_X86_SIMD
        __builtin_cpu_init();
        if (__builtin_cpu_supports("ssse3")) level = HSM_SIMD_SSSE3;
        if (__builtin_cpu_supports("avx2")) level = HSM_SIMD_AVX2;
#endif
        hsm_simd_detected = level;
    }
    return hsm_simd_detected;
}

/* The kernel hsm_map uses now: the detected level, capped by hsm_simd_set_cap. */
static int hsm_simd_level(void) {
    int d = hsm_simd_detect();
    return d < hsm_simd_cap ? d : hsm_simd_cap;
}

/* Test switch: use no kernel above `cap` (HSM_SIMD_SCALAR forces the scalar loop). */
static void hsm_simd_set_cap(int cap) { hsm_simd_cap = cap; }

static void hsm_map_scalar(uint8_t *s, size_t n, const uint8_t *lut) {
    size_t i;
    for (i = 0; i < n; i++) s[i] = lut[s[i]];
}

/* The non-identity 16-byte blocks of lut, by high nibble; returns their number. */
static int hsm_lut_blocks(const uint8_t *lut, uint8_t *blocks) {
    int h, l, nb = 0;
    for (h = 0; h < 16; h++) {
        for (l = 0; l < 16; l++) {
            if (lut[h * 16 + l] != (uint8_t)(h * 16 + l)) {
                blocks[nb++] = (uint8_t)h;
                break;
            }
        }
    }
    return nb;
}

#if STREAMHSM_X86_SIMD
__attribute__((target("ssse3")))
static void hsm_map_ssse3(uint8_t *s, size_t n, const uint8_t *lut, const uint8_t *blocks, int nb) {
    __m128i tbl[16], hv[16];
    const __m128i lo_mask = _mm_set1_epi8(0x0F), hi_mask = _mm_set1_epi8((char)0xF0);
    size_t i = 0;
    int b;
    for (b = 0; b < nb; b++) {
        tbl[b] = _mm_loadu_si128((const __m128i *)(lut + 16 * blocks[b]));
        hv[b] = _mm_set1_epi8((char)(blocks[b] << 4));
    }
    if (nb == 1) {
        const __m128i t0 = tbl[0], h0 = hv[0];
        for (; i + 16 <= n; i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i m = _mm_cmpeq_epi8(_mm_and_si128(x, hi_mask), h0);
            __m128i y = _mm_shuffle_epi8(t0, _mm_and_si128(x, lo_mask));
            _mm_storeu_si128((__m128i *)(s + i), _mm_or_si128(_mm_and_si128(m, y), _mm_andnot_si128(m, x)));
        }
    } else {
        for (; i + 16 <= n; i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i hi = _mm_and_si128(x, hi_mask), lo = _mm_and_si128(x, lo_mask), r = x;
            for (b = 0; b < nb; b++) {
                __m128i m = _mm_cmpeq_epi8(hi, hv[b]);
                __m128i y = _mm_shuffle_epi8(tbl[b], lo);
                r = _mm_or_si128(_mm_and_si128(m, y), _mm_andnot_si128(m, r));
            }
            _mm_storeu_si128((__m128i *)(s + i), r);
        }
    }
    hsm_map_scalar(s + i, n - i, lut);
}

__attribute__((target("avx2")))
static void hsm_map_avx2(uint8_t *s, size_t n, const uint8_t *lut, const uint8_t *blocks, int nb) {
    __m256i tbl[16], hv[16];
    const __m256i lo_mask = _mm256_set1_epi8(0x0F), hi_mask = _mm256_set1_epi8((char)0xF0);
    size_t i = 0;
    int b;
    for (b = 0; b < nb; b++) {
        tbl[b] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(lut + 16 * blocks[b])));
        hv[b] = _mm256_set1_epi8((char)(blocks[b] << 4));
    }
    if (nb == 1) {
        const __m256i t0 = tbl[0], h0 = hv[0];
        for (; i + 64 <= n; i += 64) {
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(s + i));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(s + i + 32));
            __m256i m0 = _mm256_cmpeq_epi8(_mm256_and_si256(x0, hi_mask), h0);
            __m256i m1 = _mm256_cmpeq_epi8(_mm256_and_si256(x1, hi_mask), h0);
            __m256i y0 = _mm256_shuffle_epi8(t0, _mm256_and_si256(x0, lo_mask));
            __m256i y1 = _mm256_shuffle_epi8(t0, _mm256_and_si256(x1, lo_mask));
            _mm256_storeu_si256((__m256i *)(s + i), _mm256_blendv_epi8(x0, y0, m0));
            _mm256_storeu_si256((__m256i *)(s + i + 32), _mm256_blendv_epi8(x1, y1, m1));
        }
    }
    for (; i + 32 <= n; i += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i hi = _mm256_and_si256(x, hi_mask), lo = _mm256_and_si256(x, lo_mask), r = x;
        for (b = 0; b < nb; b++) {
            __m256i m = _mm256_cmpeq_epi8(hi, hv[b]);
            r = _mm256_blendv_epi8(r, _mm256_shuffle_epi8(tbl[b], lo), m);
        }
        _mm256_storeu_si256((__m256i *)(s + i), r);
    }
    hsm_map_scalar(s + i, n - i, lut);
}
#endif

/* states[i] = lut[states[i]] for every i < n, with the best kernel allowed. */
static void hsm_map(uint8_t *s, size_t n, const uint8_t *lut) {
#if STREAMHSM_X86_SIMD
    int level = hsm_simd_level();
    if (level > HSM_SIMD_SCALAR && n >= 64) {
        uint8_t blocks[16];
        int nb = hsm_lut_blocks(lut, blocks);
        if (nb == 0) return;  /* the identity: nothing changes */
        if (level >= HSM_SIMD_AVX2) hsm_map_avx2(s, n, lut, blocks, nb);
        else hsm_map_ssse3(s, n, lut, blocks, nb);
        return;
    }
#endif
    hsm_map_scalar(s, n, lut);
}

/* ---- batch validation: the first index whose value is >= limit (as unsigned), or n ---- */

static size_t hsm_first_ge_i64_scalar(const int64_t *a, size_t n, uint64_t limit) {
    size_t i;
    for (i = 0; i < n; i++) if ((uint64_t)a[i] >= limit) return i;
    return n;
}

static size_t hsm_first_ge_i32_scalar(const int32_t *a, size_t n, uint64_t limit) {
    size_t i;
    for (i = 0; i < n; i++) if ((uint64_t)(int64_t)a[i] >= limit) return i;
    return n;
}

static size_t hsm_first_ge_u8_scalar(const uint8_t *a, size_t n, uint64_t limit) {
    size_t i;
    if (limit > 255) return n;
    for (i = 0; i < n; i++) if (a[i] >= limit) return i;
    return n;
}

#if STREAMHSM_X86_SIMD
/* 64 int64 per step (OR-accumulated); a block with any offender is rescanned by the scalar loop. */
__attribute__((target("avx2")))
static size_t hsm_first_ge_i64_avx2(const int64_t *a, size_t n, uint64_t limit) {
    const __m256i sign = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    const __m256i lim = _mm256_set1_epi64x((long long)((limit - 1) ^ 0x8000000000000000ULL));
    size_t i = 0;
    if (limit == 0) return n ? 0 : n;
    for (; i + 64 <= n; i += 64) {
        __m256i acc = _mm256_setzero_si256();
        size_t j;
        for (j = 0; j < 64; j += 16) {
            __m256i x0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + i + j)), sign);
            __m256i x1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + i + j + 4)), sign);
            __m256i x2 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + i + j + 8)), sign);
            __m256i x3 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + i + j + 12)), sign);
            acc = _mm256_or_si256(acc, _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpgt_epi64(x0, lim), _mm256_cmpgt_epi64(x1, lim)),
                _mm256_or_si256(_mm256_cmpgt_epi64(x2, lim), _mm256_cmpgt_epi64(x3, lim))));
        }
        if (!_mm256_testz_si256(acc, acc)) return i + hsm_first_ge_i64_scalar(a + i, 64, limit);
    }
    return i + hsm_first_ge_i64_scalar(a + i, n - i, limit);
}

/* 128 int32 per step; a negative value is an offender (huge as a 64-bit unsigned index). */
__attribute__((target("avx2")))
static size_t hsm_first_ge_i32_avx2(const int32_t *a, size_t n, uint64_t limit) {
    size_t i = 0;
    __m256i lim;
    if (limit == 0) return n ? 0 : n;
    if (limit > 0x7FFFFFFFULL) limit = 0x80000000ULL;  /* every non-negative int32 passes */
    lim = _mm256_set1_epi32((int)(limit - 1));
    for (; i + 128 <= n; i += 128) {
        __m256i acc = _mm256_setzero_si256();
        size_t j;
        for (j = 0; j < 128; j += 32) {
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(a + i + j));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(a + i + j + 8));
            __m256i x2 = _mm256_loadu_si256((const __m256i *)(a + i + j + 16));
            __m256i x3 = _mm256_loadu_si256((const __m256i *)(a + i + j + 24));
            /* an offender is above lim (signed) or negative (its sign bit, spread by srai) */
            __m256i over = _mm256_or_si256(_mm256_or_si256(_mm256_cmpgt_epi32(x0, lim), _mm256_cmpgt_epi32(x1, lim)),
                                           _mm256_or_si256(_mm256_cmpgt_epi32(x2, lim), _mm256_cmpgt_epi32(x3, lim)));
            __m256i neg = _mm256_srai_epi32(_mm256_or_si256(_mm256_or_si256(x0, x1), _mm256_or_si256(x2, x3)), 31);
            acc = _mm256_or_si256(acc, _mm256_or_si256(over, neg));
        }
        if (!_mm256_testz_si256(acc, acc)) return i + hsm_first_ge_i32_scalar(a + i, 128, limit);
    }
    return i + hsm_first_ge_i32_scalar(a + i, n - i, limit);
}

/* 128 uint8 per step: an offender is a byte above limit - 1. */
__attribute__((target("avx2")))
static size_t hsm_first_ge_u8_avx2(const uint8_t *a, size_t n, uint64_t limit) {
    size_t i = 0;
    __m256i lim;
    if (limit > 255) return n;
    if (limit == 0) return n ? 0 : n;
    lim = _mm256_set1_epi8((char)(limit - 1));
    for (; i + 128 <= n; i += 128) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(a + i));
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(a + i + 32));
        __m256i x2 = _mm256_loadu_si256((const __m256i *)(a + i + 64));
        __m256i x3 = _mm256_loadu_si256((const __m256i *)(a + i + 96));
        __m256i mx = _mm256_max_epu8(_mm256_max_epu8(x0, x1), _mm256_max_epu8(x2, x3));
        if (_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(mx, lim), lim)) != -1)
            return i + hsm_first_ge_u8_scalar(a + i, 128, limit);
    }
    return i + hsm_first_ge_u8_scalar(a + i, n - i, limit);
}
#define HSM_FIRST_GE(kind, a, n, limit) \
    (hsm_simd_level() >= HSM_SIMD_AVX2 ? hsm_first_ge_##kind##_avx2(a, n, limit) \
                                       : hsm_first_ge_##kind##_scalar(a, n, limit))
#else
#define HSM_FIRST_GE(kind, a, n, limit) hsm_first_ge_##kind##_scalar(a, n, limit)
#endif

static size_t hsm_first_ge_i64(const int64_t *a, size_t n, uint64_t limit) { return HSM_FIRST_GE(i64, a, n, limit); }
static size_t hsm_first_ge_i32(const int32_t *a, size_t n, uint64_t limit) { return HSM_FIRST_GE(i32, a, n, limit); }
static size_t hsm_first_ge_u8(const uint8_t *a, size_t n, uint64_t limit) { return HSM_FIRST_GE(u8, a, n, limit); }

#endif /* STREAMHSM_SIMD_H */
