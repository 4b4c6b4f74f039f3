#ifndef CBASE64_H
#define CBASE64_H
// Vector kernels for `TriggerModel.Base64` (issue 12: a file bound for an http runner is base64-encoded on the
// gateway's event loop, 5 instructions a byte in the scalar table loop). Only TriggerModel imports this module;
// the whole codec (padding, tails, decoding, errors) stays in Swift, these only do the bulk of whole groups.
#include <stddef.h>
#include <stdint.h>

/// Encodes whole 12-byte groups of `src` (`count` bytes) into 16 standard-alphabet characters each at `dst`,
/// while at least 16 bytes of `src` are readable (each step loads 16 and uses 12); returns the number of input
/// bytes consumed (a multiple of 12; `dst` got 4/3 of that). Returns 0 where the CPU has no SSSE3 (checked
/// once) or off x86-64: the caller's scalar loop then does all of it. 24 bytes a step with AVX2 where present.
size_t CBase64_encodeBulk(const uint8_t *src, size_t count, uint8_t *dst);

/// Whether the first `count` bytes of `src` are all in RFC 4648 §4's standard alphabet (`A-Z a-z 0-9 + /`),
/// 32 (SSSE3) or 64 (AVX2) at a time, the CPU checked once; a scalar loop elsewhere.
int CBase64_isStandardAlphabet(const uint8_t *src, size_t count);

#endif
