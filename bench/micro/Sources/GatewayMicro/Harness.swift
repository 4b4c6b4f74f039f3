import Foundation
import GatewayBenchmarks
import MallocInterposerSwift

/// What one benchmark measured.
struct MicroResult {
    let name: String
    let bytes: Int
    let nanosPerOp: Double
    let mallocsPerOp: Double
    let mallocBytesPerOp: Double
    let iterations: Int

    var opsPerSecond: Double { 1e9 / nanosPerOp }
    /// Decimal megabytes per second of input.
    var megabytesPerSecond: Double { bytes == 0 ? 0 : Double(bytes) / nanosPerOp * 1e3 }
}

/// Times each benchmark by wall clock, in rounds long enough to dwarf the clock's cost, and counts mallocs in a
/// separate pass with the interposer hooked (hooking costs time, so it never overlaps the timed rounds).
///
/// The reported time is the fastest of `samples` rounds: on a shared machine the noise is one-sided (other
/// work only ever adds time), so the minimum is the most repeatable figure.
enum Harness {
    static var interposerLoaded: Bool {
        ProcessInfo.processInfo.environment["LD_PRELOAD"]?.contains("MallocInterposer") ?? false
    }

    static func measure(
        _ benchmark: MicroBenchmark,
        targetSeconds: Double,
        samples: Int
    ) throws -> MicroResult {
        var sink = 0
        // Warm-up, and an estimate of one run's cost.
        let clock = ContinuousClock()
        var iterations = 1
        while true {
            let start = clock.now
            for _ in 0..<iterations { sink &+= try benchmark.run() }
            let elapsed = seconds(clock.now - start)
            if elapsed > targetSeconds / Double(samples) / 4 || iterations >= 1 << 24 {
                iterations = max(1, Int(Double(iterations) * (targetSeconds / Double(samples)) / max(elapsed, 1e-9)))
                break
            }
            iterations *= 4
        }
        var best = Double.infinity
        for _ in 0..<samples {
            let start = clock.now
            for _ in 0..<iterations { sink &+= try benchmark.run() }
            best = min(best, seconds(clock.now - start) / Double(iterations))
        }
        var mallocs = Double.nan
        var mallocBytes = Double.nan
        if interposerLoaded {
            let counted = max(1, min(iterations, 100))
            MallocInterposerSwift.reset()
            MallocInterposerSwift.hook()
            for _ in 0..<counted { sink &+= try benchmark.run() }
            MallocInterposerSwift.unhook()
            let statistics = MallocInterposerSwift.getStatistics()
            mallocs = Double(statistics.mallocCount) / Double(counted)
            mallocBytes = Double(statistics.mallocBytesCount) / Double(counted)
        }
        blackHole(sink)
        return MicroResult(
            name: benchmark.name,
            bytes: benchmark.bytes,
            nanosPerOp: best * 1e9,
            mallocsPerOp: mallocs,
            mallocBytesPerOp: mallocBytes,
            iterations: iterations
        )
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (s, attoseconds) = duration.components
        return Double(s) + Double(attoseconds) * 1e-18
    }

    @inline(never)
    static func blackHole(_ value: Int) {
        if value == 0x5eed_f00d { print("") }
    }
}
