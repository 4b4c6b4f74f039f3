import ThreadLocals
import TriggerModel

/// The random words of trace ids, span ids and request ids: a xoshiro256** generator per thread, seeded once
/// from the system's generator (`SystemRandomNumberGenerator`) when a thread first draws.
///
/// Why not the system generator per id: on Linux every `SystemRandomNumberGenerator.next()` is a `getrandom(2)`
/// syscall, and a trigger drew five (request id, trace id, span id) on the hot path (issue 11). These ids need
/// to be unique and random-looking, not secret: W3C Trace Context (§3.2.2.3, §3.2.2.4) asks for trace and span
/// ids that are random and not all zeros, Level 2's `random` flag for 56 random bits, and nothing in the gateway
/// authorizes by a trace or request id. A generator seeded with 256 system bits per thread gives that (xoshiro256**
/// passes BigCrush; threads start from independent seeds, so two event loops do not repeat each other's ids).
/// Anything that must be unguessable keeps the system generator: access tokens (`CraftAccessTokens`) and
/// operation ids (`Operation`).
///
/// Each thread's state is its own (a ``ThreadLocalObject``; an event loop is one thread): no lock, no atomic.
enum ThreadRandom {
    /// One thread's xoshiro256** state (Blackman and Vigna, "Scrambled linear pseudorandom number generators",
    /// 2021; the reference `xoshiro256starstar.c`). Only ever used by the thread that made it (hence unchecked).
    final class Generator: RandomNumberGenerator, @unchecked Sendable {
        private var s0: UInt64
        private var s1: UInt64
        private var s2: UInt64
        private var s3: UInt64

        init<Seed: RandomNumberGenerator>(seed: inout Seed) {
            repeat {
                s0 = seed.next()
                s1 = seed.next()
                s2 = seed.next()
                s3 = seed.next()
            } while s0 | s1 | s2 | s3 == 0  // the one state xoshiro never leaves
        }

        func next() -> UInt64 {
            let result = (s1 &* 5).rotatedLeft(by: 7) &* 9
            let t = s1 << 17
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = s3.rotatedLeft(by: 45)
            return result
        }
    }

    private static let generators = ThreadLocalObject<Generator>()

    /// Calls `body` with the calling thread's generator, seeded from the system's on the thread's first draw.
    static func withGenerator<Result>(_ body: (Generator) -> Result) -> Result {
        generators.withValue(
            makingWith: {
                var system = SystemRandomNumberGenerator()
                return Generator(seed: &system)
            }, body)
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(by count: UInt64) -> UInt64 {
        (self << count) | (self >> (64 - count))
    }
}
