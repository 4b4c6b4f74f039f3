package import NIOCore

/// SHA-256 (FIPS 180-4 §6.2) for the `blob-info` pipeline, computed over a `ByteBuffer`'s readable bytes
/// in place: whole 64-byte blocks are compressed straight from the buffer's memory, and only the final
/// partial block is copied (into a 64-byte stack buffer, for padding).
///
/// Written here rather than taken from swift-crypto so the demo runner needs no extra dependency; it is
/// checked against the NIST vectors and against `/usr/bin/sha256sum` in the tests.
package struct SHA256: Sendable {
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19
    )
    /// Bytes of an incomplete block carried between `update` calls.
    private var pending: [UInt8] = []
    private var totalBytes: UInt64 = 0

    package init() {}

    /// The digest of `buffer`'s readable bytes (the reader index is not moved).
    package static func hash(_ buffer: ByteBuffer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(buffer)
        return hasher.finalize()
    }

    /// The digest of `buffer` as 64 lowercase hex digits.
    package static func hexDigest(_ buffer: ByteBuffer) -> String {
        hex(hash(buffer))
    }

    package static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(digest.count * 2)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    package mutating func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { update($0) }
    }

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var base = bytes.baseAddress, bytes.count > 0 else { return }
        var remaining = bytes.count
        totalBytes &+= UInt64(remaining)
        if !pending.isEmpty {
            let take = min(64 - pending.count, remaining)
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: take))
            base += take
            remaining -= take
            guard pending.count == 64 else { return }
            pending.withUnsafeBytes { compress(blocks: $0.baseAddress!, count: 1) }
            pending.removeAll(keepingCapacity: true)
        }
        let blocks = remaining / 64
        if blocks > 0 {
            compress(blocks: base, count: blocks)
            base += blocks * 64
            remaining -= blocks * 64
        }
        if remaining > 0 { pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: remaining)) }
    }

    /// Pads (a 1 bit, zeros, the 64-bit big-endian bit length: §5.1.1) and returns the 32-byte digest.
    package mutating func finalize() -> [UInt8] {
        var tail = pending
        tail.append(0x80)
        let zeros = (tail.count <= 56 ? 56 : 120) - tail.count
        tail.append(contentsOf: repeatElement(0, count: zeros))
        let bitLength = totalBytes &* 8
        for shift in stride(from: 56, through: 0, by: -8) {
            tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        tail.withUnsafeBytes { compress(blocks: $0.baseAddress!, count: tail.count / 64) }
        pending.removeAll()
        let words = [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7]
        var digest = [UInt8]()
        digest.reserveCapacity(32)
        for word in words {
            digest.append(UInt8(truncatingIfNeeded: word >> 24))
            digest.append(UInt8(truncatingIfNeeded: word >> 16))
            digest.append(UInt8(truncatingIfNeeded: word >> 8))
            digest.append(UInt8(truncatingIfNeeded: word))
        }
        return digest
    }

    /// §6.2.2 over `count` consecutive 64-byte blocks at `blocks` (any alignment).
    private mutating func compress(blocks: UnsafeRawPointer, count: Int) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
            Self.roundConstants.withUnsafeBufferPointer { constants in
                Self.compress(&state, blocks, count, schedule.baseAddress!, constants.baseAddress!)
            }
        }
    }

    /// The block loop, on raw pointers and `while` loops and optimized even in debug builds: the e2e tests
    /// run unoptimized and hash tens of MiB, which generic iterators and checked subscripts make crawl.
    @_optimize(speed)
    private static func compress(
        _ state: inout (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32),
        _ blocks: UnsafeRawPointer,
        _ count: Int,
        _ w: UnsafeMutablePointer<UInt32>,
        _ k: UnsafePointer<UInt32>
    ) {
        var (h0, h1, h2, h3, h4, h5, h6, h7) = state
        var block = blocks
        let end = blocks + count &* 64
        while block < end {
            var t = 0
            while t < 16 {
                w[t] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: t &* 4, as: UInt32.self))
                t &+= 1
            }
            while t < 64 {
                let x = w[t &- 15]
                let y = w[t &- 2]
                let s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3)
                let s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >> 10)
                w[t] = w[t &- 16] &+ s0 &+ w[t &- 7] &+ s1
                t &+= 1
            }
            var (a, b, c, d, e, f, g, h) = (h0, h1, h2, h3, h4, h5, h6, h7)
            t = 0
            while t < 64 {
                let bigS1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let choose = (e & f) ^ (~e & g)
                let t1 = h &+ bigS1 &+ choose &+ k[t] &+ w[t]
                let bigS0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = bigS0 &+ majority
                h = g
                g = f
                f = e
                e = d &+ t1
                d = c
                c = b
                b = a
                a = t1 &+ t2
                t &+= 1
            }
            h0 &+= a
            h1 &+= b
            h2 &+= c
            h3 &+= d
            h4 &+= e
            h5 &+= f
            h6 &+= g
            h7 &+= h
            block += 64
        }
        state = (h0, h1, h2, h3, h4, h5, h6, h7)
    }

    // Transparent so it is inlined in debug builds too.
    @_transparent
    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 &- n)) }

    /// §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]
}
