import SeededRandom
import Testing
import WireCodecs
import TestScheduling

#if canImport(Glibc)
    import Glibc
#endif

@Suite("MultipartDelimiterSearch")
struct MultipartDelimiterSearchTests {
    /// What the search must answer, the slow way: every offset compared whole.
    static func naiveFirst(_ bytes: [UInt8], _ delimiter: [UInt8], from: Int) -> Int? {
        guard bytes.count - from >= delimiter.count else { return nil }
        return (from...(bytes.count - delimiter.count)).first {
            bytes[$0..<($0 + delimiter.count)].elementsEqual(delimiter)
        }
    }

    static func naivePartial(_ bytes: [UInt8], _ delimiter: [UInt8], from: Int) -> Int? {
        (max(from, bytes.count - delimiter.count + 1)..<bytes.count).first { i in
            delimiter.starts(with: bytes[i...])
        }
    }

    /// `bytes` copied to the end of a page whose next page is unreadable: a load past the chunk's end faults
    /// (an array's storage usually has spare capacity after its last byte, which would hide one).
    static func withGuardPage<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let span = (bytes.count + page - 1) / page * page + page
        let mapped = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        precondition(mapped != MAP_FAILED)
        defer { munmap(mapped, span) }
        precondition(mprotect(mapped + (span - page), page, PROT_NONE) == 0)
        let start = mapped + (span - page - bytes.count)
        bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(start), byteCount: $0.count) }
        return body(UnsafeRawBufferPointer(start: start, count: bytes.count))
    }

    static func check(_ bytes: [UInt8], _ delimiter: [UInt8], from: Int) {
        let search = MultipartDelimiterSearch(delimiter: delimiter)
        withGuardPage(bytes) { raw in
            #expect(search.firstMatch(in: raw, from: from) == naiveFirst(bytes, delimiter, from: from))
            if naiveFirst(bytes, delimiter, from: from) == nil {
                #expect(search.partialMatchAtEnd(in: raw, from: from) == naivePartial(bytes, delimiter, from: from))
            }
        }
    }

    /// Random chunks built from the delimiter's own pieces (its prefixes, near-misses with one byte changed,
    /// CR and LF runs, random bytes), so that candidates, partial matches at the chunk's end and whole
    /// delimiters at every alignment of the 32-byte blocks, found by `memchr` or in a vector stretch, all
    /// occur; each answer against the naive search.
    @Test("agrees with a naive search on chunks made of the delimiter's pieces", .cpuBound)
    func agreesWithNaive() {
        var rng = SplitMix64(seed: 0x5EED_0D0A)
        for round in 0..<3_000 {
            let boundaryLength = Int.random(in: 1...70, using: &rng)
            let boundary = (0..<boundaryLength).map { _ in UInt8.random(in: 0x21...0x7E, using: &rng) }
            let delimiter: [UInt8] = [0x0D, 0x0A, 0x2D, 0x2D] + boundary
            var bytes: [UInt8] = []
            // Some long enough for a vector stretch (4 KiB) to end and `memchr` to take over again.
            let length = Int.random(in: 0...(round % 10 == 0 ? 10_000 : 300), using: &rng)
            while bytes.count < length {
                switch Int.random(in: 0..<6, using: &rng) {
                case 0: bytes += delimiter.prefix(Int.random(in: 1...delimiter.count, using: &rng))
                case 1:
                    var nearMiss = delimiter
                    nearMiss[Int.random(in: 0..<nearMiss.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    bytes += nearMiss
                case 2: bytes += [UInt8](repeating: 0x0D, count: Int.random(in: 1...40, using: &rng))
                case 3: bytes += [0x0D, 0x0A]
                case 4 where round % 5 == 0: bytes += delimiter
                default:
                    let count = Int.random(in: 1...64, using: &rng)
                    bytes += (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            }
            Self.check(bytes, delimiter, from: Int.random(in: 0...bytes.count, using: &rng))
        }
    }

    @Test("a delimiter at each offset of a 200-byte chunk, and cut short at the chunk's end")
    func everyOffset() {
        let delimiter = Array("\r\n--boundary7MA4YWxk".utf8)
        let filler = [UInt8](repeating: UInt8(ascii: "x"), count: 200)
        for at in 0...(filler.count - delimiter.count) {
            var bytes = filler
            bytes.replaceSubrange(at..<(at + delimiter.count), with: delimiter)
            Self.check(bytes, delimiter, from: 0)
            Self.check(bytes, delimiter, from: at)
            Self.check(bytes, delimiter, from: at + 1)
        }
        for kept in 1..<delimiter.count {
            Self.check(filler + delimiter.prefix(kept), delimiter, from: 0)
        }
    }

    @Test("runs of CR, CR LF and near misses hold no delimiter")
    func adversarialRuns() {
        let delimiter = Array("\r\n------------------------a1b2c3d4e5f6a7b8".utf8)
        let last = delimiter.last!
        let runs: [[UInt8]] = [
            [UInt8](repeating: 0x0D, count: 4096),
            (0..<4096).map { $0 % 2 == 0 ? 0x0D : 0x0A },
            (0..<4096).map { [0x0D, 0x0A, last][$0 % 3] },
            Array(repeatElement(delimiter.dropLast() + [UInt8(ascii: "z")], count: 100).joined()),
        ]
        for run in runs {
            Self.check(run, delimiter, from: 0)
            Self.check(run + delimiter, delimiter, from: 0)
        }
    }
}
