package import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Storage for a large request body of a declared length, or the first file part of such a multipart body, its
/// pages advised to the kernel as transparent huge pages.
///
/// Why (issue 12): a large body's storage is fresh memory (malloc maps it anew for each body and unmaps it after),
/// and every 4 KiB page of it faulted at its first write: ~6 200 page faults per 24 MiB JSON body, about a third of
/// the gateway's CPU for such an upload (perf: `exc_page_fault`, `clear_page`, the memory cgroup's charges).
/// `madvise(MADV_HUGEPAGE)` on the buffer's whole 2 MiB pages makes them fault 2 MiB at a time where the kernel's
/// `transparent_hugepage` setting is `madvise` (Debian's default) or `always`; with `never`, or off Linux, it does
/// nothing. The gateway's CPU per 24 MiB JSON upload went from 28 to 22 ms, per 32 MiB multipart file from 36 to
/// 30 ms (bench/README "Thirty-third session: large bodies' page faults"). Our own code, not a library: it is one
/// system call on a buffer NIO allocated; the alternative, glibc's `glibc.malloc.hugetlb=1` tunable, is an
/// environment variable operators would have to set.
///
/// Advised only past the storage's first ``unadvisedPrefix`` bytes: a huge page is resident whole from its first
/// touched byte, so a body could hold up to 2 MiB more than it has sent, and the request-buffer budget
/// (`limits.max_buffered_request_bytes`) counts what a body has sent (a stalled upload that sent 16 KiB must not hold
/// 2 MiB). Past 8 MiB sent, one huge page more is at most a quarter more, the budget's own overstatement bound.
package enum LargeBodyStorage {
    /// The bytes at the start of the storage left to ordinary pages: 8 MiB (see above).
    package static let unadvisedPrefix = 8 << 20

    /// Storage from this size up is advised: 12 MiB, so that at least one whole 2 MiB page fits past
    /// ``unadvisedPrefix`` whatever the alignment.
    package static let hugePageThreshold = unadvisedPrefix + (4 << 20)

    /// A new buffer of `capacity` bytes, advised when it is large.
    package static func allocate(capacity: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: capacity)
        if capacity >= hugePageThreshold { adviseHugePages(&buffer) }
        return buffer
    }

    /// Advises the whole 2 MiB pages of `buffer`'s writable storage past its first ``unadvisedPrefix`` bytes (a new
    /// buffer's: none of it touched yet). A hint: a refusal (an old kernel, THP compiled out) changes nothing.
    ///
    /// Only for storage allocated whole: tried on growing buffers too (a multipart file part grown by `realloc`,
    /// the new tail advised), it saved no fault (~9 000 per 32 MiB file either way; most fault in libc's copy
    /// inside `realloc`). The first file part is sized whole instead (`MultipartFormDecoder`).
    private static func adviseHugePages(_ buffer: inout ByteBuffer) {
        #if os(Linux)
            let hugePage = UInt(2 << 20)
            buffer.withUnsafeMutableWritableBytes { storage in
                guard let base = storage.baseAddress, storage.count > unadvisedPrefix else { return }
                let start = (UInt(bitPattern: base) + UInt(unadvisedPrefix) + hugePage - 1) & ~(hugePage - 1)
                let end = (UInt(bitPattern: base) + UInt(storage.count)) & ~(hugePage - 1)
                guard end > start, let aligned = UnsafeMutableRawPointer(bitPattern: start) else { return }
                _ = madvise(aligned, Int(end - start), MADV_HUGEPAGE)
            }
        #endif
    }
}
