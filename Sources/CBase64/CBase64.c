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

// The same steps on 24 bytes at a time (aklomp/base64's AVX2 codec). Each 128-bit lane shuffles within itself
// only, so the 32-byte load starts 4 bytes before the group: the low lane then holds its 12 bytes at 4…15, the
// high lane at 0…11. The first group is done with SSSE3, so that load never reaches before `src`.
__attribute__((target("avx2"))) static size_t encodeAVX2(const uint8_t *src, size_t count, uint8_t *dst) {
    if (count < 16) return 0;
    size_t done = encodeSSSE3(src, 16, dst);  // 12 bytes
    dst += 16;
    const __m256i order = _mm256_set_epi8(
        10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1, 14, 15, 13, 14, 11, 12, 10, 11, 8, 9, 7, 8, 5, 6, 4, 5);
    const __m256i lut = _mm256_setr_epi8(
        65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0, 65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4,
        -4, -19, -16, 0, 0);
    while (count - done >= 28) {
        __m256i in = _mm256_loadu_si256((const __m256i *)(src + done - 4));
        in = _mm256_shuffle_epi8(in, order);
        const __m256i t0 = _mm256_and_si256(in, _mm256_set1_epi32(0x0fc0fc00));
        const __m256i t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x04000040));
        const __m256i t2 = _mm256_and_si256(in, _mm256_set1_epi32(0x003f03f0));
        const __m256i t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x01000010));
        const __m256i sextets = _mm256_or_si256(t1, t3);
        __m256i indices = _mm256_subs_epu8(sextets, _mm256_set1_epi8(51));
        indices = _mm256_sub_epi8(indices, _mm256_cmpgt_epi8(sextets, _mm256_set1_epi8(25)));
        _mm256_storeu_si256((__m256i *)dst, _mm256_add_epi8(sextets, _mm256_shuffle_epi8(lut, indices)));
        dst += 32;
        done += 24;
    }
    return done + encodeSSSE3(src + done, count - done, dst);
}

size_t CBase64_encodeBulk(const uint8_t *src, size_t count, uint8_t *dst) {
    static int level = -1;  // 0 none, 1 SSSE3, 2 AVX2; a benign race: every thread computes the same value
    if (level < 0) level = __builtin_cpu_supports("avx2") ? 2 : __builtin_cpu_supports("ssse3") ? 1 : 0;
    switch (level) {
    case 2: return encodeAVX2(src, count, dst);
    case 1: return encodeSSSE3(src, count, dst);
    default: return 0;
    }
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

// The same lookups on 32 bytes at a time (the tables repeated in both lanes).
__attribute__((target("avx2"))) static int isStandardAlphabetAVX2(const uint8_t *src, size_t count) {
    const __m256i highs = _mm256_setr_epi8(
        0, 0, 1, 2, 4, 8, 16, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i lows = _mm256_setr_epi8(
        42, 62, 62, 62, 62, 62, 62, 62, 62, 62, 60, 21, 20, 20, 20, 21, 42, 62, 62, 62, 62, 62, 62, 62, 62, 62, 60,
        21, 20, 20, 20, 21);
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= count; i += 64) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        const __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        const __m256i ha = _mm256_shuffle_epi8(highs, _mm256_and_si256(_mm256_srli_epi16(a, 4), nibble));
        const __m256i hb = _mm256_shuffle_epi8(highs, _mm256_and_si256(_mm256_srli_epi16(b, 4), nibble));
        const __m256i va = _mm256_and_si256(ha, _mm256_shuffle_epi8(lows, a));
        const __m256i vb = _mm256_and_si256(hb, _mm256_shuffle_epi8(lows, b));
        bad = _mm256_or_si256(bad, _mm256_or_si256(_mm256_cmpeq_epi8(va, _mm256_setzero_si256()),
                                                   _mm256_cmpeq_epi8(vb, _mm256_setzero_si256())));
    }
    if (_mm256_movemask_epi8(bad) != 0) return 0;
    return isStandardAlphabetSSSE3(src + i, count - i);
}

int CBase64_isStandardAlphabet(const uint8_t *src, size_t count) {
    static int level = -1;  // as in CBase64_encodeBulk
    if (level < 0) level = __builtin_cpu_supports("avx2") ? 2 : __builtin_cpu_supports("ssse3") ? 1 : 0;
    switch (level) {
    case 2: return isStandardAlphabetAVX2(src, count);
    case 1: return isStandardAlphabetSSSE3(src, count);
    default: return scalarIsStandardAlphabet(src, count);
    }
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
