import Foundation
import NIOCore
import Testing
import WireCodecs

/// `LargeBodyStorage` advises a large body's storage as transparent huge pages (issue 12: ~6 200 page faults per
/// 24 MiB body otherwise). What the kernel records is observable: the advised range is a mapping of its own whose
/// `VmFlags` in /proc/self/smaps include `hg` (MADV_HUGEPAGE), whatever the machine's THP setting.
@Suite("large body storage")
struct LargeBodyStorageTests {
    /// The `VmFlags` of the mapping holding `address`, from /proc/self/smaps; nil off Linux.
    static func vmFlags(at address: UInt) -> [String]? {
        // Read to the end: `String(contentsOfFile:)` reads a /proc file once and gets its first page only.
        guard let file = FileHandle(forReadingAtPath: "/proc/self/smaps") else { return nil }
        defer { try? file.close() }
        let smaps = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), fields.count >= 5, !range.hasSuffix(":") {
                let bounds = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= address && address < bounds[1]
            } else if inside, fields.first == "VmFlags:" {
                return fields.dropFirst().map(String.init)
            }
        }
        return nil
    }

    /// The first 2 MiB-aligned address in `buffer`'s writable storage at or past `offset` bytes into it.
    static func alignedAddress(in buffer: inout ByteBuffer, from offset: Int) -> UInt {
        buffer.withUnsafeMutableWritableBytes { storage in
            let hugePage = UInt(2 << 20)
            return (UInt(bitPattern: storage.baseAddress!) + UInt(offset) + hugePage - 1) & ~(hugePage - 1)
        }
    }

    @Test("a buffer at the threshold is advised past its first 8 MiB (VmFlags hg); its bytes read back")
    func advisedAtThreshold() throws {
        var buffer = LargeBodyStorage.allocate(capacity: LargeBodyStorage.hugePageThreshold)
        #expect(buffer.capacity >= LargeBodyStorage.hugePageThreshold)
        let advised = Self.alignedAddress(in: &buffer, from: LargeBodyStorage.unadvisedPrefix)
        #if os(Linux)
            let flags = try #require(Self.vmFlags(at: advised), "no mapping at \(advised) in /proc/self/smaps")
            #expect(flags.contains("hg"), "VmFlags: \(flags)")
        #endif
        let bytes = pseudoRandomBytes(LargeBodyStorage.hugePageThreshold)
        buffer.writeBytes(bytes)
        #expect(Array(buffer.readableBytesView) == bytes)
    }

    /// The first 8 MiB stay on ordinary pages (a stalled body holds only what it sent). Checked on a buffer of
    /// 40 MiB: glibc maps any request of 32 MiB or more on its own (its dynamic mmap threshold never passes
    /// 32 MiB), so the first 8 MiB's `VmFlags` are this buffer's. A 12 MiB one may come from an arena's heap
    /// once an earlier free raised that threshold, inside a mapping an earlier large body's advice marked `hg`
    /// (the parallel test run did that: CI, thirty-fourth session).
    @Test("a buffer's first 8 MiB are not advised (VmFlags without hg), what follows is")
    func prefixNotAdvised() throws {
        var buffer = LargeBodyStorage.allocate(capacity: 40 << 20)
        let prefix = Self.alignedAddress(in: &buffer, from: 0)
        let advised = Self.alignedAddress(in: &buffer, from: LargeBodyStorage.unadvisedPrefix)
        #expect(advised - prefix >= UInt(LargeBodyStorage.unadvisedPrefix) - UInt(2 << 20))
        #if os(Linux)
            let prefixFlags = try #require(Self.vmFlags(at: prefix), "no mapping at \(prefix) in /proc/self/smaps")
            #expect(!prefixFlags.contains("hg"), "VmFlags of the first 8 MiB: \(prefixFlags)")
            let flags = try #require(Self.vmFlags(at: advised), "no mapping at \(advised) in /proc/self/smaps")
            #expect(flags.contains("hg"), "VmFlags past the first 8 MiB: \(flags)")
        #endif
    }
}
