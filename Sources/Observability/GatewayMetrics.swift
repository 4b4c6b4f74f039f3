package import Prometheus
import Synchronization

/// The gateway's Prometheus metrics: one registry (swift-prometheus 2.x) and the instruments on it, from which
/// `GET /metrics` renders the text exposition format 0.0.4, every family with its `# HELP` and `# TYPE` line.
///
/// One per `GatewayApp` (one per process in production; the test harness runs several gateways in one process,
/// each with its own), created at start-up and kept across config reloads: series of pools and routes that
/// carry over keep counting, since the registry hands back the same instrument for the same name and labels.
///
/// Two ways values get here. Events (a request finished, an endpoint ejected, a retry sent, an operation
/// accepted) increment instruments that were looked up once and kept (counters and gauges are atomics, no
/// lock; the histograms recorded per call are ``ShardedHistogramFamily``s, with a shard per recording thread,
/// no lock either; the other histograms, off the per-call path, are swift-prometheus'). Levels that are state elsewhere (slots in use, queue lengths, endpoint health) are read at scrape time
/// by the collectors registered with ``addCollector(_:)``, run just before the registry is rendered.
///
/// Naming follows the Prometheus conventions (https://prometheus.io/docs/practices/naming/): a
/// `trigger_gateway_` prefix, `_total` on counters, base units in the name (`_seconds`, `_bytes`).
package final class GatewayMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry
    /// Request counts, durations and sizes; the `RequestObserver` the frontends tell.
    package let requests: RequestMetrics
    package let async: AsyncMetrics
    package let store: StoreMetrics
    package let webhooks: WebhookMetrics
    package let schedules: ScheduleMetrics
    package let connections: ConnectionMetrics
    /// Request bodies refused for what they would make the gateway hold, and the bytes bodies hold now.
    package let requestBuffer: RequestBufferMetrics
    package let config: ConfigMetrics
    /// `trigger_gateway_ready{component}`: what the readiness endpoints answer, for alerts.
    package let readiness: ReadinessMetrics
    /// `process_start_time_seconds`, `process_open_fds`, `process_max_fds` (Prometheus' standard names).
    private let process: ProcessMetrics
    /// `trigger_gateway_tls_certificate_expiry_timestamp_seconds`: the listener certificate's `notAfter`; no
    /// series without TLS.
    private let certificateExpiry = Mutex<Gauge?>(nil)
    /// `trigger_gateway_backend_request_duration_seconds`, shared by every pool's ``PoolMetrics`` (a reload's
    /// pools find their endpoints' series in it).
    private let backendDurations = ShardedHistogramFamily(
        name: "trigger_gateway_backend_request_duration_seconds",
        help: "One try of a call on a backend endpoint, from picking it to its answer or failure, in seconds.",
        bounds: MetricBuckets.seconds
    )

    private struct Collectors {
        var next = 0
        var byID: [Int: @Sendable () -> Void] = [:]
    }

    private let collectors = Mutex(Collectors())
    /// One scrape at a time: collectors set gauges, then the registry is rendered; two scrapes interleaving
    /// would only show a level one collector pass older, but serializing keeps each scrape one coherent pass.
    private let scraping = Mutex(())

    /// `registry`: a fresh one unless a test hands its own.
    package init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.requests = RequestMetrics(registry: registry)
        self.async = AsyncMetrics(registry: registry)
        self.store = StoreMetrics(registry: registry)
        self.webhooks = WebhookMetrics(registry: registry)
        self.schedules = ScheduleMetrics(registry: registry)
        self.connections = ConnectionMetrics(registry: registry)
        self.requestBuffer = RequestBufferMetrics(registry: registry)
        self.config = ConfigMetrics(registry: registry)
        self.readiness = ReadinessMetrics(registry: registry)
        self.process = ProcessMetrics(registry: registry)
        GatewayBuild.register(on: registry)
        addCollector { [process] in process.collect() }
    }

    /// The listener certificate in force from now on (start-up, a reload that loaded new files): its `notAfter`
    /// in seconds since the Unix epoch, nil without TLS. Without TLS the series is absent, not 0: "does not apply"
    /// is an absent series in Prometheus (as blackbox_exporter's `probe_ssl_earliest_cert_expiry` exists for TLS
    /// probes only), and a 0 made the documented expiry alert fire for every cleartext instance (review 26 M7).
    package func setListenerCertificateExpiry(_ notValidAfter: Double?) {
        certificateExpiry.withLock { gauge in
            guard let notValidAfter else {
                if let old = gauge { registry.unregisterGauge(old) }
                gauge = nil
                return
            }
            let current =
                gauge
                ?? registry.gauge(
                    name: "trigger_gateway_tls_certificate_expiry_timestamp_seconds",
                    help: "When the listener's TLS certificate in force expires (its notAfter), in seconds since the "
                        + "Unix epoch; absent without TLS. Alert on it minus time() (Envoy: "
                        + "days_until_first_cert_expiring).")
            current.set(to: notValidAfter)
            gauge = current
        }
    }

    /// `trigger_gateway_data_directory_free_bytes` from now on: `read` (the bytes free on the SQLite data
    /// directory's disk; nil when unknown, shown as 0) at every scrape, never per call. Only a gateway with an
    /// SQLite store calls it, so the series is absent for PostgreSQL.
    package func trackDataDirectoryFreeBytes(_ read: @escaping @Sendable () -> UInt64?) {
        let free = registry.gauge(
            name: "trigger_gateway_data_directory_free_bytes",
            help: "Bytes free for the gateway on the disk holding the SQLite data directory (statvfs f_bavail, read "
                + "at scrape time; 0 when it cannot be read). Async triggers fail 503 when it runs out.")
        addCollector { free.set(to: Double(read() ?? 0)) }
    }

    /// A pool's instruments: its own and one set per endpoint (`endpoints` as configured, `host:port`).
    package func pool(_ name: String, endpoints: [String]) -> PoolMetrics {
        PoolMetrics(registry: registry, backendDurations: backendDurations, pool: name, endpoints: endpoints)
    }

    /// Runs `collect` before every scrape (to set gauges from state kept elsewhere) until the returned token's
    /// ``CollectorToken/cancel()``.
    @discardableResult
    package func addCollector(_ collect: @escaping @Sendable () -> Void) -> CollectorToken {
        let id = collectors.withLock { c in
            c.next += 1
            c.byID[c.next] = collect
            return c.next
        }
        return CollectorToken { [weak self] in _ = self?.collectors.withLock { $0.byID.removeValue(forKey: id) } }
    }

    /// The text exposition (format 0.0.4, `text/plain; version=0.0.4`) after running the collectors.
    package func scrape() -> [UInt8] {
        scraping.withLock { _ in
            for collect in collectors.withLock({ Array($0.byID.values) }) { collect() }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16 << 10)
            registry.emit(into: &buffer)
            // The families recorded per call (``ShardedHistogramFamily``: no lock per record) are not the
            // registry's; same text format, after its families.
            requests.emitHistograms(into: &buffer)
            backendDurations.emit(into: &buffer)
            return buffer
        }
    }

    /// The content type of ``scrape()``.
    package static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// Ends a collector registration.
package struct CollectorToken: Sendable {
    private let end: @Sendable () -> Void
    init(_ end: @escaping @Sendable () -> Void) { self.end = end }
    package func cancel() { end() }
}

/// Bucket boundaries shared by the families that measure the same kind of thing.
package enum MetricBuckets {
    /// Seconds, 1 ms to 60 s: gateway and backend request durations, store calls, dispatch lag.
    package static let seconds: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    ]
    /// Bytes, powers of 4 from 64 B to 256 MiB: request and response bodies.
    package static let bytes: [Double] = (0...11).map { 64 * pow4($0) }

    private static func pow4(_ n: Int) -> Double {
        var value = 1.0
        for _ in 0..<n { value *= 4 }
        return value
    }
}

/// What request bodies make the gateway hold (review 24, H2 and M1): `trigger_gateway_requests_refused_total{reason}`
/// and `trigger_gateway_request_buffer_bytes` / `_limit_bytes`, the process-wide budget's count and bound, with
/// `trigger_gateway_request_buffer_unauthenticated_bytes` / `_limit_bytes` for the pool of bodies read before
/// authentication (diff review 60: a pool that fills had no gauge), set at scrape time (never per request).
package final class RequestBufferMetrics: Sendable {
    /// Why a request's body was refused for its size in memory.
    package enum Refusal: String, Sendable, CaseIterable {
        /// A compressed gRPC message inflated past `limits.max_decompressed_bytes` (RESOURCE_EXHAUSTED).
        case decompression
        /// The process-wide budget, `limits.max_buffered_request_bytes`, had no room for the body (503 /
        /// RESOURCE_EXHAUSTED).
        case requestBuffer = "request_buffer"
        /// The pool of bodies read before authentication (Craft AI's `auth/refresh`, Abacus.AI's keyless calls;
        /// 1/64 of `limits.max_buffered_request_bytes`) had no room (503 / RESOURCE_EXHAUSTED).
        case unauthenticatedBuffer = "unauthenticated_buffer"
    }

    private let refusals: [Refusal: Counter]
    private let connectionHolds: Counter
    private let buffered: Gauge
    private let limit: Gauge
    private let unauthenticatedBuffered: Gauge
    private let unauthenticatedLimit: Gauge

    init(registry: PrometheusCollectorRegistry) {
        refusals = registry.counters(
            Refusal.self, name: "trigger_gateway_requests_refused_total", label: "reason",
            help: "Requests refused for what their body would make the gateway hold, by reason (decompression: a "
                + "compressed gRPC message over limits.max_decompressed_bytes; request_buffer: "
                + "limits.max_buffered_request_bytes of request bodies were held)."
        )
        connectionHolds = registry.counter(
            name: "trigger_gateway_request_buffer_connection_holds_total",
            help: "Times an HTTP/2 connection's request bodies reached "
                + "limits.max_buffered_request_bytes_per_connection and its streams' flow-control window was held "
                + "back (no WINDOW_UPDATE until bytes were handed on); its oldest body still got window."
        )
        buffered = registry.gauge(
            name: "trigger_gateway_request_buffer_bytes",
            help: "Request-body bytes held buffered now, every request together (HTTP/1.1 and HTTP/2 bodies being "
                + "gathered, gRPC messages at their decompressed size), counted against "
                + "limits.max_buffered_request_bytes."
        )
        limit = registry.gauge(
            name: "trigger_gateway_request_buffer_limit_bytes",
            help: "limits.max_buffered_request_bytes in force (0: no budget)."
        )
        unauthenticatedBuffered = registry.gauge(
            name: "trigger_gateway_request_buffer_unauthenticated_bytes",
            help: "Request-body bytes held now by the bodies read before their request is authenticated (Craft AI's "
                + "auth/refresh, Abacus.AI's keyless calls), a pool apart from "
                + "trigger_gateway_request_buffer_bytes."
        )
        unauthenticatedLimit = registry.gauge(
            name: "trigger_gateway_request_buffer_unauthenticated_limit_bytes",
            help: "The bound of the pool of bodies read before authentication: 1/64 of "
                + "limits.max_buffered_request_bytes, at least 1 MiB (16 MiB without a budget); past it those calls "
                + "are refused (reason=\"unauthenticated_buffer\")."
        )
    }

    /// A body was refused for `reason`.
    package func refused(_ reason: Refusal) { refusals[reason]!.increment() }

    /// An HTTP/2 connection reached its bound on buffered request bodies and began holding its streams' windows.
    package func connectionHeld() { connectionHolds.increment() }

    /// Scrape time: the budget's count and bound, and those of its pool of bodies read before authentication.
    package func set(bufferedBytes: Int, limit: Int, unauthenticatedBytes: Int, unauthenticatedLimit: Int) {
        buffered.set(to: Double(bufferedBytes))
        self.limit.set(to: Double(limit))
        unauthenticatedBuffered.set(to: Double(unauthenticatedBytes))
        self.unauthenticatedLimit.set(to: Double(unauthenticatedLimit))
    }
}

/// Open frontend connections by wire protocol.
package final class ConnectionMetrics: Sendable {
    package enum WireProtocol: String, Sendable, CaseIterable {
        case http1
        case http2
    }

    /// Why an HTTP/2 connection was ended with GOAWAY(ENHANCE_YOUR_CALM) (RFC 9113 §5.4.1).
    package enum ExcessiveLoad: String, Sendable, CaseIterable {
        /// The client reset streams faster than the engine's limit (CVE-2023-44487).
        case rapidReset = "rapid_reset"
        /// The client sent PING/SETTINGS frames faster than it read their acknowledgements (Envoy's
        /// `http2.outbound_control_flood`).
        case controlFrameFlood = "control_frame_flood"
    }

    /// The error code of the GOAWAY that ended an HTTP/2 connection for the client's protocol error, by its
    /// RFC 9113 §7 name (`trigger_gateway_http2_protocol_errors_total{reason}`): every code but NO_ERROR, so the
    /// label set is closed whichever code libnghttp2 picks (it sends PROTOCOL_ERROR, FLOW_CONTROL_ERROR,
    /// FRAME_SIZE_ERROR, STREAM_CLOSED and COMPRESSION_ERROR for what a peer sends), each there from the start.
    package enum HTTP2ProtocolError: String, Sendable, CaseIterable {
        case protocolError = "PROTOCOL_ERROR"
        case internalError = "INTERNAL_ERROR"
        case flowControlError = "FLOW_CONTROL_ERROR"
        case settingsTimeout = "SETTINGS_TIMEOUT"
        case streamClosed = "STREAM_CLOSED"
        case frameSizeError = "FRAME_SIZE_ERROR"
        case refusedStream = "REFUSED_STREAM"
        case cancel = "CANCEL"
        case compressionError = "COMPRESSION_ERROR"
        case connectError = "CONNECT_ERROR"
        case enhanceYourCalm = "ENHANCE_YOUR_CALM"
        case inadequateSecurity = "INADEQUATE_SECURITY"
        case http11Required = "HTTP_1_1_REQUIRED"

        /// The code numbered `code` in RFC 9113 §7 (0x1…0xd); nil for NO_ERROR (0x0) and codes §7 does not define.
        package init?(code: UInt32) {
            guard code >= 1, code <= 0xd else { return nil }
            self = Self.allCases[Int(code) - 1]
        }
    }

    /// Why an HTTP/2 request header block was refused (RFC 9113 §10.5.1; Envoy counts the like as
    /// `http2.header_overflow`).
    package enum HeaderBlockRefusal: String, Sendable, CaseIterable {
        /// Over `limits.max_header_bytes`: answered 431 / RESOURCE_EXHAUSTED on its stream, the connection kept.
        case maxHeaderBytes = "max_header_bytes"
        /// More CONTINUATION frames than the engine allows (over ~1 MiB): the connection ended with
        /// GOAWAY(ENHANCE_YOUR_CALM).
        case tooManyContinuations = "too_many_continuations"
        /// HPACK decoding failed (a single field over 65,536 encoded bytes, libnghttp2's limit, or a malformed
        /// block): the connection ended with GOAWAY(COMPRESSION_ERROR), as RFC 9113 §4.3 requires.
        case compressionError = "compression_error"
        /// Blocks over `limits.max_header_bytes` past what the gateway decodes to refuse them: one decoded past
        /// 1040 KiB (or 4× the limit, when larger), or a fifth decoded past 4× the limit on one connection (HPACK
        /// references of one byte each naming a 4 KB entry; security review 60, M1): the connection ended with
        /// GOAWAY(ENHANCE_YOUR_CALM).
        case excessiveHeaderLists = "excessive_header_lists"
    }

    /// Why a frontend connection was refused before any request was served.
    package enum RejectReason: String, Sendable, CaseIterable {
        /// `limits.max_connections` were open: closed at accept (Envoy's `downstream_cx_overflow`).
        case maxConnections = "max_connections"
        /// Its peer (an IPv4 address, an IPv6 /64) had `limits.max_connections_per_peer` open: closed at accept
        /// (nginx's `limit_conn` on `$binary_remote_addr`).
        case maxConnectionsPerPeer = "max_connections_per_peer"
        /// Cleartext HTTP/1.1 or h2c on a TLS-only port: answered 400 / INVALID_ARGUMENT, then closed. A client
        /// configured with `http://` for an `https://` gateway shows up here, not as a TLS handshake error.
        case tlsRequired = "tls_required"
    }

    private let open: [Gauge]
    private let accepted: Counter
    private let calm: [ExcessiveLoad: Counter]
    private let protocolErrors: [HTTP2ProtocolError: Counter]
    private let rejected: [RejectReason: Counter]
    private let headerBlocks: [HeaderBlockRefusal: Counter]
    private let admitted: Gauge
    private let admittedLimit: Gauge
    private let backendOpen: Gauge
    private let backendIdle: Gauge
    private let backendLimit: Gauge
    private let backendRefused: Counter
    /// The budget's refusals already added to ``backendRefused`` (the budget keeps its own running count).
    private let backendRefusedSeen = Atomic<Int>(0)

    init(registry: PrometheusCollectorRegistry) {
        // Envoy's `downstream_cx_total`, nginx's stub_status `accepts` (review 18 F4: connection churn, clients not
        // reusing connections, was invisible). Like nginx's `accepts`, it counts the connections then closed at
        // accept for `limits.max_connections` too (nginx's `accepts - handled`; Envoy leaves its overflow out of
        // `downstream_cx_total`): what an operator alerts on is the rate of new connections the listener took, a
        // flood over the cap most of all, and `connections_rejected_total{reason}` over it is the refused share.
        // No labels: the wire protocol and TLS are not known at accept (the sniff comes after), and there is one
        // listener.
        self.accepted = registry.counter(
            name: "trigger_gateway_connections_accepted_total",
            help: "Frontend connections accepted, those then closed for limits.max_connections included "
                + "(see connections_rejected_total)."
        )
        // Envoy's `upstream_cx_active` and `upstream_cx_overflow`, for the one process-wide budget.
        self.backendOpen = registry.gauge(
            name: "trigger_gateway_backend_connections_open",
            help:
                "Backend connections open or connecting now, every pool together (the backend connection budget's count)."
        )
        // Envoy's `upstream_cx_active` minus `upstream_rq_active`, for the budget: what a connect over the budget
        // may close (so idle connections never cause a refusal) and what `idle_timeout` closes.
        self.backendIdle = registry.gauge(
            name: "trigger_gateway_backend_connections_idle",
            help: "Backend connections open with no call on them (counted in backend_connections_open), every pool "
                + "together: a connect over the budget closes the least recently used of them instead of failing, "
                + "and each closes after its pool's idle_timeout."
        )
        self.backendLimit = registry.gauge(
            name: "trigger_gateway_backend_connections_limit",
            help: "The backend connections the open-file limit leaves room for, every pool together; a connect over "
                + "it closes an idle one, or fails as overload (503 / UNAVAILABLE, UO) when every one carries a call."
        )
        self.backendRefused = registry.counter(
            name: "trigger_gateway_backend_connections_refused_total",
            help: "Backend connects refused before they were made: the backend connection budget was spent with "
                + "every connection carrying a call (none idle to close), or the "
                + "kernel said the process is out of file descriptors (EMFILE/ENFILE). Each failed its call with "
                + "503 / UNAVAILABLE."
        )
        // Envoy counts the same as `http2.rx_reset` / nghttpx logs it; ours names the GOAWAY code sent.
        self.calm = registry.counters(
            ExcessiveLoad.self, name: "trigger_gateway_http2_enhance_your_calm_total", label: "reason",
            help: "HTTP/2 connections ended with GOAWAY ENHANCE_YOUR_CALM, by reason (rapid_reset: "
                + "stream resets over the rate limit; control_frame_flood: PING/SETTINGS faster than their "
                + "acknowledgements were read)."
        )
        // Envoy counts these by kind (`http2.rx_messaging_error`, `http2.too_many_headers`…) and logs them at debug;
        // ours, by the GOAWAY code sent: what a broken or hostile client looping on reconnects shows as (review 26,
        // M3), where the warning is held back.
        self.protocolErrors = registry.counters(
            HTTP2ProtocolError.self, name: "trigger_gateway_http2_protocol_errors_total", label: "reason",
            help: "HTTP/2 connections the gateway ended for the client's protocol error, by the GOAWAY error code "
                + "sent (RFC 9113 section 7 names: PROTOCOL_ERROR, FLOW_CONTROL_ERROR, COMPRESSION_ERROR...). "
                + "ENHANCE_YOUR_CALM for excessive load counts in http2_enhance_your_calm_total instead."
        )
        // Envoy's `downstream_cx_overflow` (listener connection limit) and cleartext on a TLS-only port, one family
        // with a reason label, each label set there from the start.
        self.rejected = registry.counters(
            RejectReason.self, name: "trigger_gateway_connections_rejected_total", label: "reason",
            help: "Frontend connections refused before serving a request, by reason (max_connections: "
                + "limits.max_connections connections were open; max_connections_per_peer: the peer had "
                + "limits.max_connections_per_peer open; tls_required: cleartext on a TLS-only port)."
        )
        self.headerBlocks = registry.counters(
            HeaderBlockRefusal.self, name: "trigger_gateway_http2_header_blocks_refused_total", label: "reason",
            help: "HTTP/2 request header blocks refused, by reason (max_header_bytes: answered 431 / "
                + "RESOURCE_EXHAUSTED; too_many_continuations, compression_error, excessive_header_lists: the connection "
                + "ended)."
        )
        // Envoy's `downstream_cx_active` against its listener's limit, nginx's `Active connections`: every connection
        // that holds a slot, also one still in the preface sniff or the TLS handshake, which `connections_open`
        // leaves out (operator review 58, F6: 10 of 10 slots taken while `connections_open` read 1).
        self.admitted = registry.gauge(
            name: "trigger_gateway_connections_admitted",
            help: "Frontend connections counted against limits.max_connections now: accepted and not closed, "
                + "in the preface sniff and the TLS handshake too."
        )
        self.admittedLimit = registry.gauge(
            name: "trigger_gateway_connections_limit",
            help: "limits.max_connections as in force (lowered to what the open-file limit allows); a connection "
                + "accepted over it is closed (connections_rejected_total{reason=\"max_connections\"})."
        )
        // Cleartext and TLS alike; `tls` says which. Both label sets exist from the start, so a dashboard sees 0.
        var gauges: [Gauge] = []
        for proto in WireProtocol.allCases {
            for tls in ["false", "true"] {
                gauges.append(
                    registry.gauge(
                        name: "trigger_gateway_connections_open",
                        labels: [("protocol", proto.rawValue), ("tls", tls)],
                        help: "Frontend connections open now, by wire protocol (after the preface sniff) and TLS."
                    )
                )
            }
        }
        self.open = gauges
    }

    /// The listener accepted a connection (before the cap, the sniff and TLS): one atomic add.
    package func acceptedConnection() { accepted.increment() }

    /// A connection's frontend was installed (after the preface sniff); pair with ``closed(_:tls:)``.
    package func opened(_ proto: WireProtocol, tls: Bool) { gauge(proto, tls: tls).increment() }

    /// An HTTP/2 connection was ended with GOAWAY(ENHANCE_YOUR_CALM) for `reason`.
    package func endedForExcessiveLoad(_ reason: ExcessiveLoad) { calm[reason]!.increment() }

    /// An HTTP/2 connection was ended with a GOAWAY carrying `code` for the client's protocol error.
    package func endedForProtocolError(_ code: HTTP2ProtocolError) { protocolErrors[code]!.increment() }

    /// An HTTP/2 request header block was refused for `reason`.
    package func refusedHeaderBlock(_ reason: HeaderBlockRefusal) { headerBlocks[reason]!.increment() }

    /// A connection was refused for `reason` (closed at accept, or answered with the reason and closed).
    package func rejected(_ reason: RejectReason) { rejected[reason]!.increment() }

    /// Scrape time: the backend connection budget's state (`idle`: of the `open` ones, those with no call;
    /// `refusedTotal`: its running count since start).
    package func setBackendConnections(open: Int, idle: Int, limit: Int, refusedTotal: Int) {
        backendOpen.set(to: Double(open))
        backendIdle.set(to: Double(idle))
        backendLimit.set(to: limit == .max ? 0 : Double(limit))
        let seen = backendRefusedSeen.exchange(refusedTotal, ordering: .relaxed)
        if refusedTotal > seen { backendRefused.increment(by: Int64(refusedTotal - seen)) }
    }

    /// Scrape time: the connections holding a slot of `limits.max_connections`, and that cap.
    package func setAdmittedConnections(open: Int, limit: Int) {
        admitted.set(to: Double(open))
        admittedLimit.set(to: Double(limit))
    }

    /// A connection counted by ``opened(_:tls:)`` closed.
    package func closed(_ proto: WireProtocol, tls: Bool) { gauge(proto, tls: tls).decrement() }

    private func gauge(_ proto: WireProtocol, tls: Bool) -> Gauge {
        open[(proto == .http1 ? 0 : 2) + (tls ? 1 : 0)]
    }
}

/// The configuration in force and its reloads (SIGHUP), after Prometheus' own
/// `prometheus_config_last_reload_successful` family.
package final class ConfigMetrics: Sendable {
    package enum ReloadOutcome: String, Sendable, CaseIterable {
        case applied
        case refused
    }

    private let registry: PrometheusCollectorRegistry
    private let reloads: [ReloadOutcome: Counter]
    private let lastSuccessful: Gauge
    private let lastTimestamp: Gauge
    private let restartRequired: Gauge
    private let info = Mutex<(digest: String, gauge: Gauge)?>(nil)

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        self.reloads = registry.counters(
            ReloadOutcome.self, name: "trigger_gateway_config_reloads_total", label: "outcome",
            help: "Reloads attempted (SIGHUP), by outcome: applied, or refused (the running configuration stayed)."
        )
        lastSuccessful = registry.gauge(
            name: "trigger_gateway_config_last_reload_successful",
            help: "Whether the last reload was applied (1) or refused (0); 1 before any reload."
        )
        lastSuccessful.set(to: 1.0)
        lastTimestamp = registry.gauge(
            name: "trigger_gateway_config_last_reload_timestamp_seconds",
            help: "When the last reload was attempted, in seconds since the Unix epoch; 0 before any reload."
        )
        // Review 18 F4: `config_info{digest}` is the file's digest, also when the file changed keys a reload
        // cannot apply; this says the file and what is in force differ.
        restartRequired = registry.gauge(
            name: "trigger_gateway_config_restart_required",
            help: "1 when the last applied reload's file changed keys that keep their running values until a "
                + "restart (listen, data_dir, store, …; logged as `restart required`), 0 otherwise and after a start."
        )
    }

    /// The configuration in force: `trigger_gateway_config_info{digest} 1`, one series (the old digest's goes).
    package func setDigest(_ digest: String) {
        info.withLock { current in
            guard current?.digest != digest else { return }
            if let old = current?.gauge { registry.unregisterGauge(old) }
            let gauge = registry.gauge(
                name: "trigger_gateway_config_info",
                labels: [("digest", digest)],
                help: "The configuration in force (always 1); digest is the SHA-256 of its file."
            )
            gauge.set(to: 1.0)
            current = (digest, gauge)
        }
    }

    /// One reload attempt at `time` (seconds since the Unix epoch). `restartRequired`: for an applied reload,
    /// whether its file changed keys that only a restart applies; a refused reload leaves the gauge as it was
    /// (the running configuration, and the file it came from, stayed).
    package func recordReload(_ outcome: ReloadOutcome, restartRequired: Bool = false, at time: Double) {
        reloads[outcome]!.increment()
        lastSuccessful.set(to: outcome == .applied ? 1.0 : 0.0)
        lastTimestamp.set(to: time)
        if outcome == .applied { self.restartRequired.set(to: restartRequired ? 1.0 : 0.0) }
    }
}

/// The registry's `make…` calls with the whole metric name written out (as README and dashboards spell it):
/// swift-prometheus 2.4 builds names from a `MetricNameDescriptor`; ours go in as its `metricName` with no
/// separate unit part. Same instrument for the same name and labels, as `make…` gives.
extension PrometheusCollectorRegistry {
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    func counter(name: String, labels: [(String, String)] = [], help: String) -> Counter {
        makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
    }

    /// One counter of the family `name` per case of `Label` (its raw value under the label `label`), all made up
    /// front: a bounded set, and a scrape shows the zeros before the first event.
    func counters<Label: CaseIterable & Hashable & RawRepresentable>(
        _: Label.Type, name: String, label: String, help: String
    ) -> [Label: Counter] where Label.RawValue == String {
        var counters: [Label: Counter] = [:]
        for value in Label.allCases {
            counters[value] = counter(name: name, labels: [(label, value.rawValue)], help: help)
        }
        return counters
    }

    func gauge(name: String, labels: [(String, String)] = [], help: String) -> Gauge {
        makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
    }

    func histogram(
        name: String,
        labels: [(String, String)] = [],
        buckets: [Double],
        help: String
    ) -> ValueHistogram {
        makeValueHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets)
    }
}
