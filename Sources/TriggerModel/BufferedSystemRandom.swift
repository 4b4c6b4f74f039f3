#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// Unpredictable random words for operation ids (and result blob names) and the Craft AI surface's generated
/// signing key: the system's generator, read in 4 KiB chunks instead of 8 bytes at a time. In TriggerModel, the
/// lowest module both the operation store and the Craft AI surface import.
///
/// Why: on Linux every `SystemRandomNumberGenerator.next()` is a `getrandom(2)` syscall, and an accepted,
/// run and completed async operation drew ~9 of them (two per id, ids for the operation and its result blobs;
/// issue 12). Operation ids must stay unguessable: an id is the only thing that names an operation to
/// `GetOperation` and cancel, so a predictable one would let a client read another's result. The bytes here
/// are still the kernel's CSPRNG output (`getrandom(2)`, the same source `SystemRandomNumberGenerator` reads),
/// only fetched 512 words at a time and handed out once each: each word is as unpredictable as one drawn
/// alone, and no word is ever given twice. This is what OpenSSL's and libsodium's generators do too (buffer
/// kernel output), minus their userspace stretching. The buffer is process memory: a process that could read
/// it could read the ids themselves. `fork()` would copy it, but the gateway never forks without `exec`.
/// Contrast `ThreadRandom` (trace, span and request ids): a seeded PRNG is enough there, not here.
///
/// One buffer for the process under a mutex: a draw is a lock and a copy (tens of ns), and the few threads
/// that draw (event loops, the store's thread) rarely meet.
package enum BufferedSystemRandom {
    /// Words per refill: one `getrandom(2)` of 4 KiB.
    static let chunkWords = 512

    private struct Pool: ~Copyable {
        var words: [UInt64] = []
        var next = 0
    }

    private static let pool = Mutex(Pool())

    /// A random word from the system generator's output, each word given once.
    package static func next() -> UInt64 {
        pool.withLock { pool in
            if pool.next == pool.words.count {
                pool.words = refill()
                pool.next = 0
            }
            defer { pool.next += 1 }
            return pool.words[pool.next]
        }
    }

    /// A fresh chunk of the kernel's random bytes: `arc4random_buf` (glibc ≥ 2.36, Darwin), which on Linux is one
    /// `getrandom(2)` for the whole chunk and aborts rather than return weak bytes. (Swift's Glibc module does not
    /// declare `getrandom` itself.)
    private static func refill() -> [UInt64] {
        var words = [UInt64](repeating: 0, count: chunkWords)
        words.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
        return words
    }
}

/// `BufferedSystemRandom` as a `RandomNumberGenerator`, for the standard library's `random(using:)` APIs.
package struct BufferedSystemRandomGenerator: RandomNumberGenerator {
    package init() {}

    package mutating func next() -> UInt64 { BufferedSystemRandom.next() }
}
