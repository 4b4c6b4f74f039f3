#include "CBase64.h"

#if defined(__x86_64__)
#include <immintrin.h>

// Muła and Lemire's SSSE3 base64 encoding ("Faster Base64 Encoding and Decoding Using AVX2 Instructions", 2018,
// §3; the same steps as aklomp/base64's SSSE3 codec): shuffle each 3 bytes into a 32-bit lane, cut the lane's
// four sextets out with two multiplies, then map sextets to ASCII by adding an offset looked up per range.
__attribute__((target("ssse3"))) static inline __m128i reshuffle(__m128i in) {
    in = _mm_shuffle_epi8(in, _mm_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1));
    const __m128i t0 = _mm_and_si128(in, _mm_set1_epi32(0x0fc0fc00));
    const __m128i t1 = _mm_mulhi_epu16(t0, _mm_set1_epi32(0x04000040));
    const __m128i t2 = _mm_and_si128(in, _mm_set1_epi32(0x003f03f0));
    const __m128i t3 = _mm_mullo_epi16(t2, _mm_set1_epi32(0x01000010));
    return _mm_or_si128(t1, t3);
}

__attribute__((target("ssse3"))) static inline __m128i translate(__m128i in) {
    // Offsets to add per range: 0-25 → 'A' (65), 26-51 → 'a' - 26 (71), 52-61 → '0' - 52 (-4), 62 → '+' - 62
    // (-19), 63 → '/' - 63 (-16).
    const __m128i lut = _mm_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
    __m128i indices = _mm_subs_epu8(in, _mm_set1_epi8(51));
    const __m128i mask = _mm_cmpgt_epi8(in, _mm_set1_epi8(25));
    indices = _mm_sub_epi8(indices, mask);
    return _mm_add_epi8(in, _mm_shuffle_epi8(lut, indices));
}

__attribute__((target("ssse3"))) static size_t encodeSSSE3(const uint8_t *src, size_t count, uint8_t *dst) {
    size_t done = 0;
    while (count - done >= 16) {
        __m128i in = _mm_loadu_si128((const __m128i *)(src + done));
        _mm_storeu_si128((__m128i *)dst, translate(reshuffle(in)));
        dst += 16;
        done += 12;
    }
    return done;
}

size_t CBase64_encodeBulk(const uint8_t *src, size_t count, uint8_t *dst) {
    static int supported = -1;  // a benign race: every thread computes the same value
    if (supported < 0) supported = __builtin_cpu_supports("ssse3") ? 1 : 0;
    return supported ? encodeSSSE3(src, count, dst) : 0;
}

static int scalarIsStandardAlphabet(const uint8_t *src, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const uint8_t c = src[i], lower = c | 0x20;
        if (!((lower >= 'a' && lower <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/')) return 0;
    }
    return 1;
}

// A byte is in the alphabet when the classes its high nibble allows meet those its low nibble allows (two
// 16-entry lookups, Muła's nibble technique): bit k stands for high nibble 2 + k. Bytes ≥ 0x80 look up 0 in
// `lows` (pshufb zeroes lanes whose index has bit 7 set), so they fail.
__attribute__((target("ssse3"))) static int isStandardAlphabetSSSE3(const uint8_t *src, size_t count) {
    const __m128i highs = _mm_setr_epi8(0, 0, 1, 2, 4, 8, 16, 32, 0, 0, 0, 0, 0, 0, 0, 0);
    //                                  0   1   2   3   4   5   6   7   8   9   A   B   C   D   E   F
    const __m128i lows = _mm_setr_epi8(
        42, 62, 62, 62, 62, 62, 62, 62, 62, 62, 60, 21, 20, 20, 20, 21);
    const __m128i nibble = _mm_set1_epi8(0x0F);
    __m128i bad = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        const __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        const __m128i ha = _mm_shuffle_epi8(highs, _mm_and_si128(_mm_srli_epi16(a, 4), nibble));
        const __m128i hb = _mm_shuffle_epi8(highs, _mm_and_si128(_mm_srli_epi16(b, 4), nibble));
        const __m128i va = _mm_and_si128(ha, _mm_shuffle_epi8(lows, a));
        const __m128i vb = _mm_and_si128(hb, _mm_shuffle_epi8(lows, b));
        bad = _mm_or_si128(bad, _mm_or_si128(_mm_cmpeq_epi8(va, _mm_setzero_si128()), _mm_cmpeq_epi8(vb, _mm_setzero_si128())));
    }
    if (_mm_movemask_epi8(bad) != 0) return 0;
    return scalarIsStandardAlphabet(src + i, count - i);
}

int CBase64_isStandardAlphabet(const uint8_t *src, size_t count) {
    static int supported = -1;  // a benign race: every thread computes the same value
    if (supported < 0) supported = __builtin_cpu_supports("ssse3") ? 1 : 0;
    return supported ? isStandardAlphabetSSSE3(src, count) : scalarIsStandardAlphabet(src, count);
}

#else

size_t CBase64_encodeBulk(const uint8_t *src, size_t count, uint8_t *dst) {
    (void)src;
    (void)count;
    (void)dst;
    return 0;
}

int CBase64_isStandardAlphabet(const uint8_t *src, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const uint8_t c = src[i], lower = c | 0x20;
        if (!((lower >= 'a' && lower <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/')) return 0;
    }
    return 1;
}

#endif
