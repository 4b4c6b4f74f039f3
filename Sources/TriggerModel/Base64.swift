internal import CBase64
package import NIOCore

/// The gateway's one base64 codec (RFC 4648), table-driven over raw bytes and writing straight into
/// `ByteBuffer`s or caller-provided memory, so no payload is ever turned into a Swift `String`. Data URIs on
/// every path (REST JSON, multipart fields, `google.protobuf.Struct` strings) go through here.
///
/// Encoding writes the standard alphabet, padded. Decoding accepts the standard alphabet and the URL-safe one
/// (`-`, `_`), mixed, with or without `=` padding; it rejects whitespace and any other byte, and a length no
/// encoding has. Unused bits of the last quantum are ignored, as Go's and Python's default decoders do.
///
/// Ours rather than swift-extras-base64 (1.2.0), which uses the same four-table technique (after Chromium's)
/// and since 1.2.0 also decodes into caller memory: its decoder takes one alphabet per call, chosen up front,
/// while a data URI does not say which one its client used (ours takes either, even mixed); and its errors
/// name the bad character but not where it is, which the client's error message does (`DataURI`). Speed: ours
/// decodes 1.1–1.4× and encodes 1.2× as fast (rows "base64 decode/encode, TriggerModel" and "…, ExtrasBase64"
/// of one bench/micro run, side by side in bench/README.md "Our code or a library"), and encoding and the
/// alphabet check have had SSSE3/AVX2 kernels since (`CBase64`; bench/README.md, branch mpfast).
package enum Base64 {
    /// Why a decode failed; `offset` is the index of the first offending byte in the input.
    package struct Failure: Error, Equatable, Sendable {
        package var offset: Int
        package var reason: String

        package init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }
    }

    /// The number of characters `encode` writes for `byteCount` bytes (always padded).
    package static func encodedLength(_ byteCount: Int) -> Int { (byteCount + 2) / 3 * 4 }

    /// Room `decode` needs in its output for `characterCount` input characters: the decoded length plus the
    /// slack of the word-sized stores the decoder makes.
    package static func decodeCapacity(_ characterCount: Int) -> Int { characterCount / 4 * 3 + 3 }

    /// Appends the padded standard-alphabet encoding of `input` to `output`.
    package static func encode(_ input: UnsafeRawBufferPointer, into output: inout ByteBuffer) {
        let length = encodedLength(input.count)
        guard length > 0 else { return }
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
            encode(input, into: out)
        }
    }

    /// Writes the padded standard-alphabet encoding of `input` to the start of `output`, which must hold
    /// `encodedLength(input.count)` bytes; returns that length.
    @discardableResult
    package static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        let count = input.count
        let length = encodedLength(count)
        precondition(output.count >= length, "base64 output buffer too small")
        guard count > 0, let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
        let dst = output.baseAddress!
        pairTable.withUnsafeBufferPointer { pairs in
            let pairs = pairs.baseAddress!
            // Whole 12-byte groups with SSSE3 where the CPU has it (`CBase64_encodeBulk`): 0.7 instructions a
            // byte against the loop below's 5 (bench/README.md, branch mpfast); the loops below do the rest.
            var i = CBase64_encodeBulk(src, count, dst.assumingMemoryBound(to: UInt8.self))
            var o = i / 3 * 4
            // 6 bytes to 8 characters per step, from one unaligned 8-byte load (2 bytes read ahead, hence the
            // bound) and one 8-byte store: 1.6× the speed of the 3-byte step below, which does the tail
            // (a blob bound for an http runner is encoded this way, issue 12).
            let raw = UnsafeRawPointer(src)
            while i + 8 <= count {
                let w = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let a = UInt64(pairs[Int(truncatingIfNeeded: (w >> 52) & 0xFFF)])
                let b = UInt64(pairs[Int(truncatingIfNeeded: (w >> 40) & 0xFFF)])
                let c = UInt64(pairs[Int(truncatingIfNeeded: (w >> 28) & 0xFFF)])
                let d = UInt64(pairs[Int(truncatingIfNeeded: (w >> 16) & 0xFFF)])
                // Each pair is already in memory order; little-endian places `a` first.
                (dst + o).storeBytes(of: (a | b << 16 | c << 32 | d << 48).littleEndian, as: UInt64.self)
                i += 6
                o += 8
            }
            // Two 12-bit halves of each 24-bit group map to two characters each: 2 lookups per 3 bytes.
            while i + 3 <= count {
                let v = UInt32(src[i]) << 16 | UInt32(src[i + 1]) << 8 | UInt32(src[i + 2])
                (dst + o).storeBytes(of: pairs[Int(v >> 12)], as: UInt16.self)
                (dst + o + 2).storeBytes(of: pairs[Int(v & 0xFFF)], as: UInt16.self)
                i += 3
                o += 4
            }
            let rest = count - i
            if rest > 0 {
                let b0 = UInt32(src[i])
                let b1 = rest == 2 ? UInt32(src[i + 1]) : 0
                let v = b0 << 16 | b1 << 8
                (dst + o).storeBytes(of: pairs[Int(v >> 12)], as: UInt16.self)
                let low = pairs[Int(v & 0xFFF)]
                // `low`'s first byte (in memory order) is the third character.
                (dst + o + 2).storeBytes(
                    of: rest == 2 ? UInt8(truncatingIfNeeded: low.littleEndian) : pad,
                    as: UInt8.self
                )
                (dst + o + 3).storeBytes(of: pad, as: UInt8.self)
            }
        }
        return length
    }

    /// Appends the bytes `input` encodes to `output`. On failure `output` is left as it was.
    ///
    /// - Throws: `Failure` naming the offset of the first byte that is not base64, or a length no encoding has.
    package static func decode(_ input: UnsafeRawBufferPointer, into output: inout ByteBuffer) throws(Failure) {
        var n = input.count
        guard n > 0, let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        if n % 4 == 0 && src[n - 1] == pad {
            n -= 1
            if src[n - 1] == pad { n -= 1 }
        }
        let rest = n % 4
        if rest == 1 {
            // One leftover character cannot encode a byte: the input was truncated or has a stray character.
            throw firstInvalid(src, count: n) ?? Failure(offset: n - 1, reason: "truncated (length \(input.count))")
        }
        let quads = n / 4
        var bad: UInt32 = 0
        let writerIndex = output.writerIndex
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: decodeCapacity(n)) { out -> Int in
            let dst = out.baseAddress!
            return decodeTables.withUnsafeBufferPointer { tables -> Int in
                let t0 = tables.baseAddress!
                let t1 = t0 + 256
                let t2 = t0 + 512
                let t3 = t0 + 768
                var i = 0
                var o = 0
                // Each full group stores 4 bytes and advances 3; `decodeCapacity` reserved the slack.
                for _ in 0..<quads {
                    let x = t0[Int(src[i])] | t1[Int(src[i + 1])] | t2[Int(src[i + 2])] | t3[Int(src[i + 3])]
                    bad |= x
                    (dst + o).storeBytes(of: x.littleEndian, as: UInt32.self)
                    i += 4
                    o += 3
                }
                if rest >= 2 {
                    var x = t0[Int(src[i])] | t1[Int(src[i + 1])]
                    if rest == 3 { x |= t2[Int(src[i + 2])] }
                    bad |= x
                    dst.storeBytes(of: UInt8(truncatingIfNeeded: x), toByteOffset: o, as: UInt8.self)
                    o += 1
                    if rest == 3 {
                        dst.storeBytes(of: UInt8(truncatingIfNeeded: x >> 8), toByteOffset: o, as: UInt8.self)
                        o += 1
                    }
                }
                return o
            }
        }
        // Invalid characters map to values with bit 24 set; checking once keeps the loop branch-free.
        if bad >= invalidMarker {
            output.moveWriterIndex(to: writerIndex)
            throw firstInvalid(src, count: n) ?? Failure(offset: 0, reason: "invalid character")
        }
    }

    /// Decodes the base64 in `buffer` over itself: the decoded bytes end up at its start; returns their count.
    /// Same alphabet, padding rules and failures (offsets into `buffer`) as `decode(_:into:)`; after a
    /// failure the buffer's contents are unspecified.
    ///
    /// Why: a data URI in a large JSON body can become its blob without a second buffer (issue 12), the
    /// blob being a slice of the body it arrived in. Blocks are decoded into a small scratch buffer first,
    /// so a failure can still name the offending input byte, then copied down; the output of a block never
    /// reaches past its own input, so no input byte is overwritten before it is read.
    package static func decodeInPlace(_ buffer: UnsafeMutableRawBufferPointer) throws(Failure) -> Int {
        guard buffer.count > 0, let base = buffer.baseAddress else { return 0 }
        var n = buffer.count
        if n % 4 == 0 && buffer[n - 1] == pad {
            n -= 1
            if buffer[n - 1] == pad { n -= 1 }
        }
        if n % 4 == 1 {
            let src = base.assumingMemoryBound(to: UInt8.self)
            throw firstInvalid(src, count: n)
                ?? Failure(offset: n - 1, reason: "truncated (length \(buffer.count))")
        }
        let block = 64 << 10  // a multiple of 4: only the last block may end in padding
        var scratch = ByteBufferAllocator().buffer(capacity: decodeCapacity(block))
        var inputOffset = 0
        var outputOffset = 0
        while inputOffset < buffer.count {
            let end = min(inputOffset + block, buffer.count)
            let input = UnsafeRawBufferPointer(rebasing: buffer[inputOffset..<end])
            if end < buffer.count, input[input.count - 1] == pad {
                // Padding in the middle of the payload: not base64 (the whole-input decoder says the same).
                let failure = firstInvalid(input.baseAddress!.assumingMemoryBound(to: UInt8.self), count: input.count)!
                throw Failure(offset: inputOffset + failure.offset, reason: failure.reason)
            }
            scratch.clear()
            do {
                try decode(input, into: &scratch)
            } catch {
                throw Failure(offset: inputOffset + error.offset, reason: error.reason)
            }
            scratch.withUnsafeReadableBytes { decoded in
                (base + outputOffset).copyMemory(from: decoded.baseAddress!, byteCount: decoded.count)
            }
            outputOffset += scratch.readableBytes
            inputOffset = end
        }
        return outputOffset
    }

    /// True when `input` is the canonical base64 of some bytes: RFC 4648 §4's standard alphabet, padded to a
    /// multiple of 4 characters with `=`, and the unused bits of the last group zero (§3.5), so that it is
    /// exactly what `encode` writes for the bytes it stands for. Checks without decoding (issue 12: a data URI
    /// bound for an http runner is passed on as its client wrote it). Anything else, valid or not, is false;
    /// `decode` then tells valid from invalid and names the offending byte.
    ///
    /// - Parameter knownStandardAlphabet: how many of `input`'s first bytes the caller already found in the
    ///   standard alphabet (`isStandardAlphabet`), not looked at again: the streaming relay checked a large
    ///   body's base64 piece by piece as it arrived, and the end of the body must not wait for a second pass
    ///   over 24 MiB (issue 12). The padding and the last group are always checked.
    package static func isCanonical(_ input: UnsafeRawBufferPointer, knownStandardAlphabet: Int = 0) -> Bool {
        let n = input.count
        guard n % 4 == 0 else { return false }
        guard n > 0, let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return true }
        var padding = 0
        if src[n - 1] == pad { padding = src[n - 2] == pad ? 2 : 1 }
        let body = n - padding
        let known = min(max(knownStandardAlphabet, 0), body)
        guard allStandardAlphabet(src + known, count: body - known), let last = sextet(src[body - 1]) else {
            return false
        }
        switch padding {
        case 2: return last & 0x0F == 0
        case 1: return last & 0x03 == 0
        default: return true
        }
    }

    /// True when every byte of `input` is in RFC 4648 §4's standard alphabet (`A–Z a–z 0–9 + /`, no padding):
    /// a piece from the middle of canonical base64. The streaming relay checks each piece of a client's
    /// base64 as it arrives (issue 12), so a bad body is cut off at its piece, not after its last byte.
    package static func isStandardAlphabet(_ input: UnsafeRawBufferPointer) -> Bool {
        guard let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return true }
        return allStandardAlphabet(src, count: input.count)
    }

    /// The number of bytes canonical base64 `input` (`isCanonical`) encodes.
    package static func decodedLength(canonical input: UnsafeRawBufferPointer) -> Int {
        let n = input.count
        guard n > 0 else { return 0 }
        var padding = 0
        if input[n - 1] == pad { padding = input[n - 2] == pad ? 2 : 1 }
        return n / 4 * 3 - padding
    }

    /// Whether every byte is one of `A–Z a–z 0–9 + /`: 16 bytes a step in SSE2 (`CBase64_isStandardAlphabet`);
    /// the compiler's own vectorisation of a branch-free Swift loop took 1.4 instructions a byte (callgrind,
    /// bench/README.md, branch mpfast).
    private static func allStandardAlphabet(_ src: UnsafePointer<UInt8>, count: Int) -> Bool {
        CBase64_isStandardAlphabet(src, count) != 0
    }

    private static let pad = UInt8(ascii: "=")
    private static let invalidMarker: UInt32 = 0x0100_0000

    private static func firstInvalid(_ src: UnsafePointer<UInt8>, count: Int) -> Failure? {
        for i in 0..<count where sextet(src[i]) == nil {
            let byte = src[i]
            let shown =
                byte >= 0x20 && byte < 0x7F
                ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
            return Failure(offset: i, reason: "invalid character \(shown)")
        }
        return nil
    }

    private static func sextet(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): UInt32(c - UInt8(ascii: "a") + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0") + 52)
        case UInt8(ascii: "+"), UInt8(ascii: "-"): 62
        case UInt8(ascii: "/"), UInt8(ascii: "_"): 63
        default: nil
        }
    }

    /// Four 256-entry tables; entry `c` of table `k` is character `c`'s sextet already shifted to where it lands
    /// when position `k` of a group is stored little-endian as 3 bytes; invalid characters carry bit 24.
    private static let decodeTables: [UInt32] = {
        var tables = [UInt32](repeating: 0xFF00_0000, count: 1024)
        for c in 0...255 {
            guard let v = sextet(UInt8(c)) else { continue }
            tables[c] = v << 2
            tables[256 + c] = (v >> 4) | ((v & 0x0F) << 12)
            tables[512 + c] = ((v >> 2) << 8) | ((v & 0x03) << 22)
            tables[768 + c] = v << 16
        }
        return tables
    }()

    /// 4096 entries: each 12-bit value's two characters, laid out to be stored as one `UInt16`.
    private static let pairTable: [UInt16] = {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var table = [UInt16](repeating: 0, count: 4096)
        for v in 0..<4096 {
            let first = UInt16(alphabet[v >> 6])
            let second = UInt16(alphabet[v & 0x3F])
            table[v] = (first | second << 8).littleEndian
        }
        return table
    }()
}
