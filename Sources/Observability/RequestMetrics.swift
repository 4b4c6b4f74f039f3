package import Prometheus
import Synchronization
import ThreadLocals
import TriggerModel

/// The request-level families, fed by one ``RequestRecord`` per finished request:
///
/// - `trigger_gateway_requests_total{frontend,operation,route,mode,code}` (counter)
/// - `trigger_gateway_request_duration_seconds{frontend,operation,route,mode}` (histogram)
/// - `trigger_gateway_request_size_bytes` / `trigger_gateway_response_size_bytes` (histograms, body bytes, same
///   labels)
/// - `trigger_gateway_requests_in_flight{frontend}` (gauge: up in ``requestStarted(_:)``, down in
///   ``requestFinished(_:)``; the frontends tell both)
/// - `trigger_gateway_requests_cut_total{frontend,response_flags}` (counter): requests ended before their answer's
///   end, by who ended them in Envoy's flags (``RequestRecord/Termination``: `DC` the client, `SI` the gateway's
///   write-progress timeout, `DPE` the gateway's GOAWAY for the client's HTTP/2 protocol error, and for gRPC `DT`,
///   the client's own `grpc-timeout` passed: answered DEADLINE_EXCEEDED, which the client had already given up
///   on); `requests_total` counts them too, under the status that was sent (or 499 / CANCELLED). An HTTP/1.1
///   answer cut at write-progress after its record was written is counted here too
///   (``answerCutAfterRecord(_:_:)``)
///
/// Labels come only from the record's bounded fields: `route` is the configured pattern ("none" when the request
/// named no pipeline or none matched), `mode` "sync"/"async"/"stream" ("none" for non-trigger requests), `code`
/// the HTTP status for REST and the gRPC status name (`OK`, `NOT_FOUND`, … as grpc-go's `grpc_code`) for gRPC.
/// The histograms leave `code` out: one set of buckets per route and mode, not per outcome.
///
/// Hot path (issue 11): ``requestFinished(_:)`` runs on the connection's event loop for every request. It looks
/// its instruments up in a cache private to the calling thread (a `ThreadLocalObject`: each event loop is
/// one thread), so a recording takes neither the registry's lock (`makeCounter` & co. lock it) nor any lock
/// shared across event loops to find them. The counters and gauges are atomics; the three histograms are
/// ``ShardedHistogram``s, and the cache holds the thread's own shard of each (no lock to record: see that type).
/// Only a thread's first request of a label combination takes `RequestMetrics`' own lock, the registry's and the
/// histogram families'.
package final class RequestMetrics: RequestObserver, Sendable {
    private let registry: PrometheusCollectorRegistry
    /// The three histogram families, rendered after the registry's families by ``GatewayMetrics/scrape()``.
    let duration: ShardedHistogramFamily
    let requestSize: ShardedHistogramFamily
    let responseSize: ShardedHistogramFamily
    /// `requests_in_flight` of each frontend: two constants, not an array (an element read from an array was
    /// retained and released, two atomic operations per request; issue 11).
    private let inFlightREST: Gauge
    private let inFlightGRPC: Gauge
    /// `requests_cut_total`, indexed by frontend (rest, grpc) then termination (DC, SI, DPE, and DT for grpc
    /// only): seven atomics made up front.
    private let cut: [[Counter]]
    /// Each thread's instruments by label combination: one cache per thread for every `RequestMetrics` of the
    /// process (a key per instance ran out of POSIX's 1024 thread-specific keys in the end-to-end suites, which
    /// make a gateway per test; see ``ThreadLocalObject``), tagged with the instance it holds (``id``).
    private static let caches = ThreadLocalObject<Cache>()
    private static let nextID = Atomic<UInt64>(0)
    /// This instance's tag on a thread's ``Cache``: an id never reused (an object address may be, once freed).
    private let id: UInt64
    /// Serializes cache misses (rare: once per thread and label combination).
    private let making = Mutex(())

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        self.id = Self.nextID.add(1, ordering: .relaxed).newValue
        duration = ShardedHistogramFamily(
            name: "trigger_gateway_request_duration_seconds",
            help: "From a request's head arriving to the end of its response, in seconds.",
            bounds: MetricBuckets.seconds
        )
        requestSize = ShardedHistogramFamily(
            name: "trigger_gateway_request_size_bytes",
            help: "Request body bytes received (gRPC: message frames included).",
            bounds: MetricBuckets.bytes
        )
        responseSize = ShardedHistogramFamily(
            name: "trigger_gateway_response_size_bytes",
            help: "Response body bytes sent (gRPC: message frames included).",
            bounds: MetricBuckets.bytes
        )
        let inFlight = [RequestRecord.Frontend.rest, .grpc].map {
            registry.gauge(
                name: "trigger_gateway_requests_in_flight",
                labels: [("frontend", $0.rawValue)],
                help: "Requests received and not yet answered in full, by frontend."
            )
        }
        self.inFlightREST = inFlight[0]
        self.inFlightGRPC = inFlight[1]
        self.cut = [RequestRecord.Frontend.rest, .grpc].map { frontend in
            // In `requestFinished`'s column order; REST has no client deadline (DT).
            let flags: [RequestRecord.Termination] =
                frontend == .grpc
                ? [.downstreamDisconnected, .streamIdleTimeout, .downstreamProtocolError, .downstreamDeadline]
                : [.downstreamDisconnected, .streamIdleTimeout, .downstreamProtocolError]
            return flags.map { flag in
                registry.counter(
                    name: "trigger_gateway_requests_cut_total",
                    labels: [("frontend", frontend.rawValue), ("response_flags", flag.rawValue)],
                    help: "Requests ended before the answer's end, by who: DC (the client went away), SI (the "
                        + "gateway cut a client that read nothing for timeouts.write_progress), DPE (the gateway "
                        + "ended the client's HTTP/2 connection for its protocol error) or DT (gRPC: the client's "
                        + "own grpc-timeout passed, answered DEADLINE_EXCEEDED)."
                )
            }
        }
    }

    /// A request's head arrived (pair with exactly one ``requestFinished(_:)``).
    package func requestStarted(_ frontend: RequestRecord.Frontend) {
        if frontend == .rest { inFlightREST.increment() } else { inFlightGRPC.increment() }
    }

    /// Counts one finished request (see the type's summary for the families and labels), and ends its
    /// ``requestStarted(_:)``.
    package func requestFinished(_ record: RequestRecord) {
        if record.frontend == .rest { inFlightREST.decrement() } else { inFlightGRPC.decrement() }
        // Through the entry, not a copy of its series (four references retained and released), and the entry
        // borrowed from the thread's cache (issue 11: its retain and release were atomic operations).
        Self.caches.withValue(makingWith: Cache.init) { cache in
            withInstruments(for: record, in: cache) { entry in
                entry.series.requests.increment()
                entry.series.duration.record(Double(record.durationNanoseconds) / 1e9)
                entry.series.requestSize.record(Double(record.bytesIn))
                entry.series.responseSize.record(Double(record.bytesOut))
            }
        }
        if let flag = record.termination { countCut(record.frontend, flag) }
    }

    /// Counts, in `requests_cut_total`, an answer cut after its request's record was written, so after
    /// ``requestFinished(_:)`` counted it under the status it was answered with: HTTP/1.1 writes a sync answer's
    /// record when the answer is handed to the connection, and a client that then takes none of its last bytes
    /// for `timeouts.write_progress` is cut (`SI`) with no request open. One per connection cut (its last
    /// answer; any answers pipelined behind it are lost with it).
    package func answerCutAfterRecord(_ frontend: RequestRecord.Frontend, _ flag: RequestRecord.Termination) {
        countCut(frontend, flag)
    }

    /// `requests_cut_total{frontend, response_flags}` for `flag` (no series for `DT` on REST: never set there).
    private func countCut(_ frontend: RequestRecord.Frontend, _ flag: RequestRecord.Termination) {
        let row = cut[frontend == .rest ? 0 : 1]
        let column =
            switch flag {
            case .downstreamDisconnected: 0
            case .streamIdleTimeout: 1
            case .downstreamProtocolError: 2
            case .downstreamDeadline: 3
            }
        if row.indices.contains(column) { row[column].increment() }
    }

    /// Appends the histogram families' exposition (the counters and gauges are the registry's).
    func emitHistograms(into buffer: inout [UInt8]) {
        for family in [duration, requestSize, responseSize] { family.emit(into: &buffer) }
    }

    /// The in-flight gauge of `frontend` (for tests).
    package func inFlight(_ frontend: RequestRecord.Frontend) -> Gauge {
        frontend == .rest ? inFlightREST : inFlightGRPC
    }

    // MARK: Instruments

    /// The bounded label values of one record.
    struct Key: Hashable {
        var frontend: RequestRecord.Frontend
        var operation: String
        var route: String?
        var mode: String?
        var status: Int
        var grpcStatus: Int?

        init(_ record: RequestRecord) {
            frontend = record.frontend
            operation = record.operation
            route = record.route
            mode = record.mode
            status = record.status
            grpcStatus = record.grpcStatus
        }

        var code: String {
            guard let grpcStatus else { return String(status) }
            return GRPCStatusName.name(grpcStatus)
        }
    }

    struct Series {
        var requests: Counter
        /// The calling thread's shards: a `Series` lives in one thread's cache only.
        var duration: HistogramShard
        var requestSize: HistogramShard
        var responseSize: HistogramShard
    }

    /// One label combination's instruments, with its key. A class with constant fields: the last one used is
    /// compared with the next record in place (``matches(_:)``), not copied out of the cache first.
    final class Entry: @unchecked Sendable {
        let key: Key
        let series: Series

        init(key: Key, series: Series) {
            self.key = key
            self.series = series
        }

        /// Whether `record` has this entry's label values: `Key(record) == key` without building a key (which
        /// copies its strings: three retains and releases, ~800 instructions per request; bench/README.md,
        /// "Branch hotpath2"). Strings equal by identity (the configuration's and the gRPC method table's, the
        /// same objects request after request) compare without reading their bytes. The key's fields are read in
        /// place: as a method of `Key`, the key was copied out of the entry and destroyed after (~200
        /// instructions per request; "Branch hotpath7").
        func matches(_ record: RequestRecord) -> Bool {
            key.frontend == record.frontend && key.status == record.status && key.grpcStatus == record.grpcStatus
                && key.operation == record.operation && key.route == record.route && key.mode == record.mode
        }
    }

    /// One thread's instruments. Only ever touched by the thread it belongs to.
    final class Cache: @unchecked Sendable {
        /// The ``RequestMetrics/id`` whose instruments these are (0: none yet). A process has one; a thread
        /// that records for another (tests running several gateways) starts the cache over.
        var owner: UInt64 = 0
        var entries: [Key: Entry] = [:]
        /// The last combination this thread recorded: under load most requests repeat it, and comparing keys
        /// costs less than hashing one (the operation is a gRPC method path of ~70 bytes). Not retained: `entries`
        /// holds it (both are cleared together), so that reading it is not a retain and a release (issue 11).
        var last: Unmanaged<Entry>?
    }

    /// `body` with the entry of `record`'s label combination on the calling thread, borrowed from its `cache` (made
    /// on the thread's first request of the combination).
    @inline(__always)
    private func withInstruments<R>(for record: RequestRecord, in cache: Cache, _ body: (Entry) -> R) -> R {
        if cache.owner != id {
            cache.owner = id
            cache.last = nil
            cache.entries = [:]
        }
        if let last = cache.last, last._withUnsafeGuaranteedRef({ $0.matches(record) }) {
            return last._withUnsafeGuaranteedRef(body)
        }
        let key = Key(record)
        let entry: Entry
        if let known = cache.entries[key] {
            entry = known
        } else {
            entry = Entry(key: key, series: making.withLock { _ in make(key) })
            cache.entries[key] = entry
        }
        cache.last = Unmanaged.passUnretained(entry)
        return body(entry)
    }

    private func make(_ key: Key) -> Series {
        let labels = [
            ("frontend", key.frontend.rawValue), ("operation", key.operation), ("route", key.route ?? "none"),
            ("mode", key.mode ?? "none"),
        ]
        return Series(
            requests: registry.counter(
                name: "trigger_gateway_requests_total",
                labels: labels + [("code", key.code)],
                help: "Requests answered, by frontend, API operation, configured route, mode and outcome code "
                    + "(HTTP status for REST, gRPC status for gRPC)."
            ),
            duration: duration.series(labels: labels).shard(),
            requestSize: requestSize.series(labels: labels).shard(),
            responseSize: responseSize.series(labels: labels).shard()
        )
    }
}

/// gRPC status codes by name (grpc/doc/statuscodes.md), as the `code` label shows them.
enum GRPCStatusName {
    static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    /// The name of `code`; a code outside 0...16 keeps its number (still bounded: the frontends send only these).
    static func name(_ code: Int) -> String {
        names.indices.contains(code) ? names[code] : String(code)
    }
}
