#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization
import ThreadLocals
import TriggerModel

/// A Prometheus histogram family whose series record without a lock: each thread that records into a series
/// (an event loop is one thread) owns a shard of it, plain per-bucket counts and a sum written by that thread
/// alone, and a scrape sums the shards.
///
/// Why not swift-prometheus' `Histogram` (which the gateway uses everywhere else): its `record` takes a lock per
/// series (`NIOLockedValueBox`) and increments every bucket at or above the value, so the request families,
/// recorded by every event loop for every call, made each call take three to four locks shared by all loops
/// (issue 11's rule: nothing on the sync path contends on a lock shared across event loops per call).
/// bench/micro's "histogram record" rows measure both, alone and contended by two threads (bench/README.md,
/// "Branch metricshard"); only the families recorded per sync call use this type: the request duration and
/// sizes (``RequestMetrics``) and the backend try duration (``PoolMetrics``).
///
/// The exposition is swift-prometheus' byte for byte (text format 0.0.4): `# HELP`, `# TYPE name histogram`,
/// then per series `name_bucket{labels,le="<bound>"}` with cumulative counts, `le="+Inf"`, `name_sum{labels}`
/// and `name_count{labels}`; bounds and the sum printed as Swift's `Double.description` ("0.001", "256.0"), a
/// value counted in the first bucket whose bound is ≥ it (`le` is inclusive), label values escaped as
/// the format says (`\\`, `\"`, `\n`). A family with no series emits nothing, as swift-prometheus' does.
///
/// Series: ``series(labels:)`` hands back the same series for the same labels until ``unregister(_:)`` (as
/// swift-prometheus' registry does), so a pool a reload carries over keeps counting; an unregistered series is
/// gone from the next scrape, and one registered again later starts from zero.
package final class ShardedHistogramFamily: Sendable {
    package let name: String
    let help: String
    /// Upper bounds, ascending; the `+Inf` bucket is implicit.
    let bounds: [Double]

    private struct Registered {
        var byLabels: [[String]: ShardedHistogram] = [:]
        /// Registration order: the order a scrape lists the series in.
        var order: [ShardedHistogram] = []
    }

    private let registered = Mutex(Registered())

    /// `name` and `help` as the exposition shows them; `bounds` ascending, finite.
    package init(name: String, help: String, bounds: [Double]) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bounds must ascend")
        self.name = name
        self.help = help
        self.bounds = bounds
    }

    /// The series of `labels` (name–value pairs, in exposition order): the registered one, or a new one.
    package func series(labels: [(String, String)]) -> ShardedHistogram {
        let key = labels.flatMap { [$0.0, $0.1] }
        return registered.withLock { registered in
            if let found = registered.byLabels[key] { return found }
            let made = ShardedHistogram(labels: labels, bounds: bounds)
            registered.byLabels[key] = made
            registered.order.append(made)
            return made
        }
    }

    /// Takes `series` out of the exposition (a no-op when it is not registered here).
    package func unregister(_ series: ShardedHistogram) {
        registered.withLock { registered in
            let key = series.labels.flatMap { [$0.0, $0.1] }
            guard registered.byLabels[key] === series else { return }
            registered.byLabels[key] = nil
            registered.order.removeAll { $0 === series }
        }
    }

    /// Appends the family's exposition: nothing when it has no series.
    package func emit(into buffer: inout [UInt8]) {
        let series = registered.withLock { $0.order }
        guard !series.isEmpty else { return }
        buffer.append(contentsOf: "# HELP \(name) ".utf8)
        for byte in help.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): buffer.append(contentsOf: #"\n"#.utf8)
            default: buffer.append(byte)
            }
        }
        buffer.append(contentsOf: "\n# TYPE \(name) histogram\n".utf8)
        let bucketLabels = bounds.map { Array(#"le="\#($0.description)""#.utf8) } + [Array(#"le="+Inf""#.utf8)]
        for one in series {
            let (counts, sum) = one.snapshot()
            var cumulative: UInt64 = 0
            for (i, count) in counts.enumerated() {
                cumulative &+= count
                buffer.append(contentsOf: name.utf8)
                buffer.append(contentsOf: "_bucket{".utf8)
                if !one.renderedLabels.isEmpty {
                    buffer.append(contentsOf: one.renderedLabels)
                    buffer.append(UInt8(ascii: ","))
                }
                buffer.append(contentsOf: bucketLabels[i])
                buffer.append(contentsOf: "} \(cumulative)\n".utf8)
            }
            for (suffix, value) in [("_sum", sum.description), ("_count", String(cumulative))] {
                buffer.append(contentsOf: name.utf8)
                buffer.append(contentsOf: suffix.utf8)
                if !one.renderedLabels.isEmpty {
                    buffer.append(UInt8(ascii: "{"))
                    buffer.append(contentsOf: one.renderedLabels)
                    buffer.append(UInt8(ascii: "}"))
                }
                buffer.append(contentsOf: " \(value)\n".utf8)
            }
        }
    }
}

/// One series of a ``ShardedHistogramFamily``: its labels and the shards of the threads that recorded into it.
///
/// Recording: ``record(_:)`` finds the calling thread's shard in a table private to that thread (a
/// `pthread_getspecific` and a dictionary lookup, no lock), or ``shard()`` once and keep it (``RequestMetrics``
/// keeps them in its per-thread cache). Only a thread's first record into a series takes the series' lock, to
/// add its shard. A call completing off its event loop (an async run, a store task) records into the shard of
/// whichever thread it finishes on: still that thread's alone.
///
/// Reading: a scrape takes each shard's counts and sum together (a sequence lock per shard, below): every
/// observation is either wholly in a scrape or not at all, so `_count` equals the `+Inf` bucket, buckets never
/// decrease along `le`, and `_sum` matches the observations counted. swift-prometheus gets that with its lock;
/// client_golang got it only in 2018 (prometheus/client_golang#457, "lock-free atomic observations": a hot and a
/// cold set of counts swapped under a write lock at collect time); before that its lock-free histogram read
/// each atomic on its own and a scrape could show `_count` below the `+Inf` bucket
/// (prometheus/client_golang#275, answered "kind of by design"). Prometheus itself would tolerate such a scrape:
/// `histogram_quantile` uses only the buckets and repairs buckets that are not monotonic, and `rate()` of
/// `_sum` and `_count` treats both as counters, so an observation missing from one of them at one scrape is
/// in both at the next. Shards are summed one after another, so the series as a whole is each shard at a
/// slightly different instant (microseconds apart): a scrape sees some of the observations made while it ran
/// and not others, as any scrape of live counters does.
///
/// Memory: a shard per thread that ever recorded into the series, kept for the series' life (a thread's counts
/// stay in the sum after it exits); the threads that record are the event loops, the async dispatcher's and the
/// concurrency pool's, a fixed set. The calling thread's table keeps a shard of an unregistered series until
/// the thread exits (a few hundred bytes per endpoint a reload removed).
package final class ShardedHistogram: Sendable {
    let labels: [(String, String)]
    /// `k="v",k2="v2"` with the values escaped: the labels part of every line.
    let renderedLabels: [UInt8]
    let bounds: [Double]
    /// Distinguishes this series in the threads' tables (never reused, unlike an object's address).
    private let id: UInt64
    private let shards = Mutex<[HistogramShard]>([])

    private static let nextID = Atomic<UInt64>(0)
    private static let threadShards = ThreadLocalObject<ThreadShards>()

    init(labels: [(String, String)], bounds: [Double]) {
        self.labels = labels
        self.bounds = bounds
        self.id = Self.nextID.add(1, ordering: .relaxed).newValue
        var rendered: [UInt8] = []
        for (i, (key, value)) in labels.enumerated() {
            if i > 0 { rendered.append(UInt8(ascii: ",")) }
            rendered.append(contentsOf: key.utf8)
            rendered.append(contentsOf: #"=""#.utf8)
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): rendered.append(contentsOf: #"\\"#.utf8)
                case UInt8(ascii: "\""): rendered.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\n"): rendered.append(contentsOf: #"\n"#.utf8)
                default: rendered.append(byte)
                }
            }
            rendered.append(UInt8(ascii: "\""))
        }
        self.renderedLabels = rendered
    }

    /// Records `value` in the calling thread's shard.
    package func record(_ value: Double) {
        shard().record(value)
    }

    /// The calling thread's shard of this series (made on its first call on this thread). Record into it only
    /// on this thread.
    package func shard() -> HistogramShard {
        Self.threadShards.withValue(makingWith: ThreadShards.init) { shard(in: $0) }
    }

    private func shard(in table: ThreadShards) -> HistogramShard {
        if table.lastID == id, let last = table.last { return last }
        let shard: HistogramShard
        if let found = table.byID[id] {
            shard = found
        } else {
            shard = HistogramShard(bounds: bounds)
            shards.withLock { $0.append(shard) }
            table.byID[id] = shard
        }
        table.lastID = id
        table.last = shard
        return shard
    }

    /// Per-bucket counts (not cumulative; the last is above every bound) and the sum, over all shards.
    package func snapshot() -> (counts: [UInt64], sum: Double) {
        var counts = [UInt64](repeating: 0, count: bounds.count + 1)
        var sum = 0.0
        for shard in shards.withLock({ $0 }) { shard.add(into: &counts, sum: &sum) }
        return (counts, sum)
    }
}

/// One thread's shards, by series: only ever touched by the thread whose slot holds it.
private final class ThreadShards: @unchecked Sendable {
    var byID: [UInt64: HistogramShard] = [:]
    /// The series this thread recorded into last: most records repeat it.
    var lastID: UInt64 = 0
    var last: HistogramShard?
}

/// One thread's counts of one series: written by that thread only, read by scrapes on any thread.
///
/// A single-writer sequence lock (Boehm, "Can seqlocks get along with programming language memory models?",
/// MSPC 2012, fig. 6 with relaxed data accesses): ``record(_:)`` makes the sequence odd, writes, makes it even
/// again; a reader retries when the sequence was odd or moved while it read. The writer never waits and takes
/// no lock: on x86-64 every access here is a plain load or store (no `lock` prefix), the fences only order the
/// compiler. Counts are per bucket, not cumulative (one increment per record; the scrape accumulates).
package final class HistogramShard: @unchecked Sendable {
    private let bounds: [Double]
    /// Even when no record is in progress.
    private let sequence = Atomic<UInt64>(0)
    /// `bounds.count + 1` bucket counts, then the sum's bit pattern.
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>
    private let slotCount: Int

    init(bounds: [Double]) {
        self.bounds = bounds
        slotCount = bounds.count + 2
        slots = .allocate(capacity: slotCount)
        for i in 0..<slotCount { (slots + i).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: slotCount)
        slots.deallocate()
    }

    /// Counts `value` in the first bucket whose bound is ≥ it (NaN and values above every bound: `+Inf` only) and
    /// adds it to the sum. Only on the thread that owns the shard.
    @inline(__always)
    package func record(_ value: Double) {
        record(value, midway: {})
    }

    /// ``record(_:)`` calling `midway` with the record half written (the sequence odd): for tests of what a
    /// scrape then sees. `midway` is empty, and inlined away, on the gateway's path.
    @inline(__always)
    package func record(_ value: Double, midway: () -> Void) {
        var bucket = 0
        while bucket < bounds.count, !(value <= bounds[bucket]) { bucket += 1 }
        let sumSlot = slotCount - 1
        let begun = sequence.load(ordering: .relaxed) &+ 1
        sequence.store(begun, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        slots[bucket].store(slots[bucket].load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        midway()
        let sum = Double(bitPattern: slots[sumSlot].load(ordering: .relaxed)) + value
        slots[sumSlot].store(sum.bitPattern, ordering: .relaxed)
        sequence.store(begun &+ 1, ordering: .releasing)
    }

    /// Adds a consistent reading of this shard to `counts` (one per bucket) and `sum`.
    func add(into counts: inout [UInt64], sum: inout Double) {
        var read = [UInt64](repeating: 0, count: slotCount)
        var attempts = 0
        while true {
            let before = sequence.load(ordering: .acquiring)
            if before & 1 == 0 {
                for i in 0..<slotCount { read[i] = slots[i].load(ordering: .relaxed) }
                atomicMemoryFence(ordering: .acquiring)
                if sequence.load(ordering: .relaxed) == before { break }
            }
            // The owner is mid-record (a few nanoseconds), or was descheduled there: let it run.
            attempts += 1
            if attempts % 64 == 0 { sched_yield() }
        }
        for i in 0..<slotCount - 1 { counts[i] &+= read[i] }
        sum += Double(bitPattern: read[slotCount - 1])
    }
}
