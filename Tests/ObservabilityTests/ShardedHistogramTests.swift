import Foundation
import GatewayTestSupport
import Observability
import Prometheus
import Synchronization
import Testing
import TestScheduling

@Suite("ShardedHistogram", .cpuBound)
struct ShardedHistogramTests {
    static let bounds = [1.0, 2.5, 10.0]

    /// Runs `body(index)` on `count` threads of their own (as event loops are), all started before any records,
    /// and returns when all have ended.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchGroup()
        let start = DispatchSemaphore(value: 0)
        for index in 0..<count {
            done.enter()
            let thread = Thread {
                start.wait()
                body(index)
                done.leave()
            }
            thread.start()
        }
        for _ in 0..<count { start.signal() }
        done.wait()
    }

    @Test("the exposition is swift-prometheus' byte for byte: cumulative buckets, +Inf, sum, count, escaping")
    func sameExpositionAsSwiftPrometheus() {
        let labels = [("pool", "runner"), ("endpoint", #"odd"name\with\#nnewline"#)]
        let help = #"One try, in seconds (a \ in the help)."#
        let values = [0.0, 0.25, 1.0, 1.0.nextUp, 2.5, 7, 10, 10.0.nextUp, 1e9, 3.75]
        let registry = PrometheusCollectorRegistry()
        let theirs = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(metricName: "x_seconds", unitName: "", helpText: help),
            labels: labels,
            buckets: Self.bounds
        )
        let family = ShardedHistogramFamily(name: "x_seconds", help: help, bounds: Self.bounds)
        let ours = family.series(labels: labels)
        for value in values {
            theirs.record(value)
            ours.record(value)
        }
        var text: [UInt8] = []
        family.emit(into: &text)
        #expect(String(decoding: text, as: UTF8.self) == registry.emitToString())

        // The gateway's bounds too, with no labels.
        let bare = ShardedHistogramFamily(name: "y_bytes", help: "Bytes.", bounds: MetricBuckets.bytes)
        let bareTheirs = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(metricName: "y_bytes", unitName: "", helpText: "Bytes."),
            buckets: MetricBuckets.bytes
        )
        for value in [0.0, 64, 65, 4096, 300_000_000] {
            bare.series(labels: []).record(value)
            bareTheirs.record(value)
        }
        var bareText: [UInt8] = []
        bare.emit(into: &bareText)
        registry.unregisterValueHistogram(theirs)
        #expect(String(decoding: bareText, as: UTF8.self) == registry.emitToString())
    }

    @Test("bucket edges: a value at a bound counts in that bucket, the next double up in the next one")
    func bucketEdges() {
        let family = ShardedHistogramFamily(name: "edge_seconds", help: "Edges.", bounds: Self.bounds)
        let series = family.series(labels: [("k", "v")])
        for value in [1.0, 1.0.nextUp, 2.5, 2.5.nextUp, 10.0, 10.0.nextUp, -1.0] { series.record(value) }
        let (counts, _) = series.snapshot()
        // ≤ 1: 1.0 and -1.0; (1, 2.5]: 1.0⁺ and 2.5; (2.5, 10]: 2.5⁺ and 10; above: 10⁺.
        #expect(counts == [2, 2, 2, 1])
    }

    @Test("records from several threads at once, scraped while they record: each scrape whole, the last exact")
    func concurrentRecordsAndScrapes() {
        let family = ShardedHistogramFamily(name: "c_seconds", help: "C.", bounds: Self.bounds)
        let series = family.series(labels: [("k", "v")])
        // One value per bucket, each a small power of two, so any count of them sums exactly in a Double: a
        // scrape's sum must be exactly what its counts say, or it read a record half done.
        let values = [0.5, 2.0, 8.0, 16.0]
        let threads = 4
        let perThread = 50_000
        let recording = Atomic<Int>(threads)
        let scrapes = Atomic<Int>(0)
        let torn = Atomic<Int>(0)
        Self.onThreads(threads + 1) { index in
            if index == threads {
                // The scraper: reads while the others record, until they are done.
                var last = [UInt64](repeating: 0, count: values.count)
                while recording.load(ordering: .acquiring) > 0 {
                    let (counts, sum) = series.snapshot()
                    let expected = zip(counts, values).reduce(0.0) { $0 + Double($1.0) * $1.1 }
                    let monotonic = zip(counts, last).allSatisfy { $0 >= $1 }
                    if sum != expected || !monotonic { torn.add(1, ordering: .relaxed) }
                    last = counts
                    scrapes.add(1, ordering: .relaxed)
                }
                return
            }
            for i in 0..<perThread { series.record(values[(i + index) % values.count]) }
            recording.subtract(1, ordering: .releasing)
        }
        let (counts, sum) = series.snapshot()
        let each = UInt64(threads * perThread / values.count)
        #expect(counts == [each, each, each, each])
        #expect(sum == Double(each) * values.reduce(0, +))
        #expect(torn.load(ordering: .relaxed) == 0)
        #expect(scrapes.load(ordering: .relaxed) > 0)
        var text: [UInt8] = []
        family.emit(into: &text)
        let scrape = Exposition(String(decoding: text, as: UTF8.self))
        #expect(scrape.samples[#"c_seconds_count{k="v"}"#] == Double(threads * perThread))
        #expect(scrape.samples[#"c_seconds_bucket{k="v",le="+Inf"}"#] == Double(threads * perThread))
        #expect(scrape.samples[#"c_seconds_bucket{k="v",le="2.5"}"#] == Double(2 * each))
    }

    @Test("a scrape during a record waits for it to end, then sees it whole (count, bucket and sum together)")
    func scrapeWaitsForRecordInProgress() {
        let family = ShardedHistogramFamily(name: "w_seconds", help: "W.", bounds: Self.bounds)
        let series = family.series(labels: [("k", "v")])
        let shard = series.shard()
        shard.record(0.5)
        let seen = Mutex<(counts: [UInt64], sum: Double)?>(nil)
        let done = DispatchSemaphore(value: 0)
        shard.record(2.0) {
            // The bucket is counted, the sum not yet: a scrape now must not return.
            Thread {
                let snapshot = series.snapshot()
                seen.withLock { $0 = snapshot }
                done.signal()
            }.start()
            #expect(done.wait(timeout: .now() + .milliseconds(200)) == .timedOut, "a scrape read a half record")
        }
        #expect(done.wait(timeout: .now() + .seconds(10)) == .success)
        let snapshot = seen.withLock { $0 }
        #expect(snapshot?.counts == [1, 1, 0, 0])
        #expect(snapshot?.sum == 2.5)
    }

    @Test("a thread's shard is found again on every record, across series of one family and across families")
    func oneShardPerThreadAndSeries() {
        let family = ShardedHistogramFamily(name: "s_seconds", help: "S.", bounds: Self.bounds)
        let other = ShardedHistogramFamily(name: "t_seconds", help: "T.", bounds: Self.bounds)
        let a = family.series(labels: [("k", "a")])
        let b = family.series(labels: [("k", "b")])
        let c = other.series(labels: [("k", "a")])
        #expect(family.series(labels: [("k", "a")]) === a, "same labels, same series")
        #expect(a.shard() === a.shard())
        #expect(a.shard() !== b.shard())
        #expect(a.shard() !== c.shard())
        Self.onThreads(3) { _ in
            for _ in 0..<1000 {
                a.record(0.5)
                b.record(5)
                c.record(50)
            }
        }
        a.record(0.5)
        #expect(a.snapshot().counts == [3001, 0, 0, 0])
        #expect(b.snapshot().counts == [0, 0, 3000, 0])
        #expect(c.snapshot().counts == [0, 0, 0, 3000])
    }

    @Test("an unregistered series leaves the scrape; registered again it starts from zero; no series, no family")
    func unregister() {
        let family = ShardedHistogramFamily(name: "u_seconds", help: "U.", bounds: Self.bounds)
        let kept = family.series(labels: [("k", "kept")])
        let gone = family.series(labels: [("k", "gone")])
        kept.record(1)
        gone.record(1)
        family.unregister(gone)
        var text: [UInt8] = []
        family.emit(into: &text)
        var scrape = Exposition(String(decoding: text, as: UTF8.self))
        #expect(scrape.samples[#"u_seconds_count{k="kept"}"#] == 1)
        #expect(scrape.samples[#"u_seconds_count{k="gone"}"#] == nil)
        let again = family.series(labels: [("k", "gone")])
        #expect(again !== gone)
        text = []
        family.emit(into: &text)
        scrape = Exposition(String(decoding: text, as: UTF8.self))
        #expect(scrape.samples[#"u_seconds_count{k="gone"}"#] == 0)
        family.unregister(kept)
        family.unregister(again)
        text = []
        family.emit(into: &text)
        #expect(text.isEmpty)
    }

    @Test("pools across a reload: a carried-over endpoint's try durations keep counting, removed ones go")
    func poolReload() throws {
        let metrics = GatewayMetrics()
        let old = metrics.pool("runner", endpoints: ["a:1", "b:2"])
        let gone = metrics.pool("gone", endpoints: ["c:3"])
        old.recordTry(endpoint: 0, nanoseconds: 2_000_000)
        old.recordTry(endpoint: 1, nanoseconds: 2_000_000)
        gone.recordTry(endpoint: 0, nanoseconds: 2_000_000)
        // A reload rebuilds "runner" with one endpoint carried over and one added, and drops "gone".
        let live = metrics.pool("runner", endpoints: ["a:1", "d:4"])
        live.recordTry(endpoint: 0, nanoseconds: 20_000_000)
        old.unregister(keeping: live)
        gone.unregister(keeping: nil)
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        let family = "trigger_gateway_backend_request_duration_seconds"
        #expect(scrape.samples[#"\#(family)_count{pool="runner",endpoint="a:1",outcome="ok"}"#] == 2, "\(scrape.text)")
        #expect(scrape.samples[#"\#(family)_bucket{pool="runner",endpoint="a:1",outcome="ok",le="0.0025"}"#] == 1)
        #expect(scrape.samples[#"\#(family)_count{pool="runner",endpoint="d:4",outcome="ok"}"#] == 0)
        #expect(scrape.samples.keys.allSatisfy { !$0.contains(#"endpoint="b:2""#) }, "every outcome of b:2 goes")
        #expect(scrape.samples.keys.allSatisfy { !$0.contains(#"pool="gone""#) }, "\(scrape.text)")
        #expect(scrape.type[family] == "histogram")
        #expect(try promtoolFindings(scrape.text) == "", "\(scrape.text)")
    }
}
