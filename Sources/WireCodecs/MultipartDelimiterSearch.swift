#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Finds a multipart delimiter, `CRLF--boundary` (RFC 2046 §5.1.1), in a chunk of body bytes
/// (`MultipartFormDecoder`'s scanner).
///
/// Each CR is a candidate, found with `memchr` (in random bytes one in 256, and `memchr` between them is the
/// cheapest scan there is); a candidate is checked on its first four bytes and its last, then whole, inline.
/// Where CRs come close together, the next 4 KiB are tested 32 positions at a time with vector compares instead
/// (the delimiter's first two bytes, CR LF, and its last byte, where they belong), until a block holds such a
/// candidate: `memchr` takes over again from that block. Why: a client picks both the file and the boundary,
/// and with `memchr` alone a file of CR bytes made one call and one compare per byte.
///
/// Search alone, 8 MiB, stand-alone timings (bench/README.md "Thirty-fourth session"), this search against
/// `memchr` and `memcmp` at each CR: random bytes 0.55 against 0.53 ms; a file of CR bytes, or of CR LF, 0.64
/// against 35 and 18 ms; the dearest inputs found are candidates every few bytes (CR LF and the last byte at
/// the delimiter's distance, every third byte: 13.5 against 11.8 ms; `CRLF--` every 4 to 8 bytes: 9.8 against
/// 5.8 ms), where both go from CR to CR. Linear in the chunk either way: a candidate's compare that gets `k`
/// bytes in means no CR, so no candidate, in those `k` bytes (the delimiter's only CR is its first byte). The
/// vector compares are Swift's SIMD types: its `any` is a reduction, not a movemask, so visiting only a
/// block's flagged lanes cost more than it saved (tried).
package struct MultipartDelimiterSearch {
    /// The delimiter: CR LF `--` and the boundary, 5 to 74 bytes.
    let delimiter: [UInt8]

    /// - Precondition: `delimiter` starts with CR LF and holds no other CR (a boundary is printable ASCII),
    ///   and is at least 5 bytes long (`MultipartFormDecoder.init` checks the boundary).
    package init(delimiter: [UInt8]) {
        precondition(delimiter.count >= 5 && delimiter[0] == 0x0D && delimiter[1] == 0x0A)
        precondition(!delimiter.dropFirst().contains(0x0D))
        self.delimiter = delimiter
    }

    /// The first offset at or after `from` where the whole delimiter starts within `bytes`, or nil.
    package func firstMatch(in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        let d = delimiter.count
        // Candidates start before `limit`: a delimiter starting there would end past the chunk.
        let limit = bytes.count - d + 1
        guard let base = bytes.baseAddress, from < limit else { return nil }
        return delimiter.withUnsafeBytes { needle -> Int? in
            let lanes = 32
            let firsts = SIMD32<UInt8>(repeating: needle[0])
            let seconds = SIMD32<UInt8>(repeating: needle[1])
            let lasts = SIMD32<UInt8>(repeating: needle[d - 1])
            var i = from
            while i < limit {
                guard let hit = memchr(base + i, 0x0D, limit - i) else { return nil }
                let k = base.distance(to: UnsafeRawPointer(hit))
                if matches(base, k, needle) { return k }
                let gap = k - i
                i = k + 1
                // A CR in 256 bytes of random data: `memchr` between them is the cheapest scan. CRs close
                // together: vector blocks for the next stretch, whatever the bytes hold.
                guard gap < Self.denseCRGap else { continue }
                let stop = min(limit, i + Self.vectorStretch)
                // The loads at i, i + 1 and i + d - 1 stay within the chunk: i + 32 <= limit.
                while i + lanes <= stop {
                    let a = base.loadUnaligned(fromByteOffset: i, as: SIMD32<UInt8>.self)
                    let b = base.loadUnaligned(fromByteOffset: i + 1, as: SIMD32<UInt8>.self)
                    let c = base.loadUnaligned(fromByteOffset: i + d - 1, as: SIMD32<UInt8>.self)
                    // A block with a candidate goes back to `memchr` from its start: checking its 32 positions
                    // one by one cost ~5 instructions a byte on an input of candidates every few bytes, where
                    // `memchr` goes from CR to CR.
                    if any((a .== firsts) .& (b .== seconds) .& (c .== lasts)) { break }
                    i += lanes
                }
            }
            return nil
        }
    }

    /// A CR this close after the last one (bytes) switches to vector blocks for `vectorStretch` bytes.
    static let denseCRGap = 16
    static let vectorStretch = 4096

    /// The first offset at or after `from` from which the chunk's remaining bytes are a proper prefix of the
    /// delimiter (a delimiter that may go on in the next chunk), or nil. Looks at the last `d - 1` bytes only;
    /// call it when `firstMatch` found nothing.
    package func partialMatchAtEnd(in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        let d = delimiter.count
        let end = bytes.count
        guard let base = bytes.baseAddress else { return nil }
        var i = max(from, end - (d - 1))
        while i < end, let hit = memchr(base + i, 0x0D, end - i) {
            let at = base.distance(to: UnsafeRawPointer(hit))
            if delimiter.withUnsafeBytes({ memcmp(hit, $0.baseAddress!, end - at) }) == 0 { return at }
            i = at + 1
        }
        return nil
    }

    /// Whether the whole delimiter starts at `k`: its first four bytes, then its last, then the rest eight bytes
    /// at a time (inline: a candidate mostly fails within its first word, where a `memcmp` call costs more
    /// than the compare).
    @inline(__always)
    private func matches(_ base: UnsafeRawPointer, _ k: Int, _ needle: UnsafeRawBufferPointer) -> Bool {
        let d = needle.count
        let at = base + k
        guard at.loadUnaligned(as: UInt32.self) == needle.loadUnaligned(as: UInt32.self),
            at.load(fromByteOffset: d - 1, as: UInt8.self) == needle[d - 1]
        else { return false }
        var j = 4
        while j + 8 <= d - 1 {
            let word = at.loadUnaligned(fromByteOffset: j, as: UInt64.self)
            guard word == needle.loadUnaligned(fromByteOffset: j, as: UInt64.self) else { return false }
            j += 8
        }
        while j < d - 1 {
            guard at.load(fromByteOffset: j, as: UInt8.self) == needle[j] else { return false }
            j += 1
        }
        return true
    }
}
