import Foundation
import GatewayTestSupport
import Logging
import Observability
import Synchronization
import Testing
import TriggerModel
import TestScheduling

@Suite("GatewayMetrics")
struct GatewayMetricsTests {
    static func record(
        _ frontend: RequestRecord.Frontend,
        operation: String,
        route: String? = "demo/*",
        mode: String? = "sync",
        status: Int = 200,
        grpcStatus: Int? = nil,
        bytesIn: Int = 0,
        bytesOut: Int = 0,
        milliseconds: Int64 = 1
    ) -> RequestRecord {
        var record = RequestRecord(
            requestID: UUID().uuidString,
            frontend: frontend,
            httpVersion: "HTTP/2",
            method: "POST",
            path: "/raw-path-marker/\(UUID().uuidString)",
            operation: operation,
            status: status,
            durationNanoseconds: milliseconds * 1_000_000
        )
        record.route = route
        record.mode = mode
        record.grpcStatus = grpcStatus
        record.bytesIn = bytesIn
        record.bytesOut = bytesOut
        record.namespace = "demo"
        record.pipeline = "raw-pipeline-marker-\(UUID().uuidString)"
        return record
    }

    static let restTrigger =
        "trigger_gateway_requests_total"
        + #"{frontend="rest",operation="triggerNamespacePipeline",route="demo/*",mode="sync",code="200"}"#

    @Test("a known sequence of records gives exactly these counts, durations and sizes; raw paths never become labels")
    func requestCounts() throws {
        let metrics = GatewayMetrics()
        let observer: any RequestObserver = metrics.requests
        for _ in 0..<5 { observer.requestStarted(.rest) }
        for _ in 0..<3 { observer.requestStarted(.grpc) }
        for _ in 0..<3 {
            observer.requestFinished(
                Self.record(.rest, operation: "triggerNamespacePipeline", bytesIn: 100, bytesOut: 300, milliseconds: 20)
            )
        }
        observer.requestFinished(Self.record(.rest, operation: "triggerNamespacePipeline", status: 404))
        observer.requestFinished(Self.record(.rest, operation: "unmatched", route: nil, mode: nil, status: 404))
        let grpcMethod = "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline"
        observer.requestFinished(Self.record(.grpc, operation: grpcMethod, grpcStatus: 0))
        observer.requestFinished(Self.record(.grpc, operation: grpcMethod, grpcStatus: 0))
        observer.requestFinished(Self.record(.grpc, operation: grpcMethod, grpcStatus: 5))

        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[Self.restTrigger] == 3, "\(scrape.text)")
        #expect(
            scrape.samples[
                #"trigger_gateway_requests_total{frontend="rest",operation="triggerNamespacePipeline",route="demo/*",mode="sync",code="404"}"#
            ] == 1)
        #expect(
            scrape.samples[
                #"trigger_gateway_requests_total{frontend="rest",operation="unmatched",route="none",mode="none",code="404"}"#
            ] == 1)
        let grpcLabels = #"frontend="grpc",operation="\#(grpcMethod)",route="demo/*",mode="sync""#
        #expect(scrape.samples["trigger_gateway_requests_total{\(grpcLabels),code=\"OK\"}"] == 2)
        #expect(scrape.samples["trigger_gateway_requests_total{\(grpcLabels),code=\"NOT_FOUND\"}"] == 1)
        let requestSeries = scrape.samples.keys.filter { $0.hasPrefix("trigger_gateway_requests_total{") }
        #expect(requestSeries.count == 5, "\(requestSeries)")
        #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="rest"}"#] == 0)
        #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="grpc"}"#] == 0)

        // Histograms leave the code out: the four REST triggers of the route share one, 3 × 20 ms + 1 ms.
        let restLabels = #"frontend="rest",operation="triggerNamespacePipeline",route="demo/*",mode="sync""#
        #expect(scrape.samples["trigger_gateway_request_duration_seconds_count{\(restLabels)}"] == 4)
        let sum = try #require(scrape.samples["trigger_gateway_request_duration_seconds_sum{\(restLabels)}"])
        #expect(abs(sum - 0.061) < 1e-9)
        #expect(scrape.samples["trigger_gateway_request_duration_seconds_bucket{\(restLabels),le=\"0.01\"}"] == 1)
        #expect(scrape.samples["trigger_gateway_request_duration_seconds_bucket{\(restLabels),le=\"0.025\"}"] == 4)
        #expect(scrape.samples["trigger_gateway_request_size_bytes_sum{\(restLabels)}"] == 300)
        #expect(scrape.samples["trigger_gateway_response_size_bytes_sum{\(restLabels)}"] == 900)
        #expect(scrape.samples["trigger_gateway_response_size_bytes_bucket{\(restLabels),le=\"256.0\"}"] == 1)
        #expect(scrape.samples["trigger_gateway_response_size_bytes_bucket{\(restLabels),le=\"1024.0\"}"] == 4)

        #expect(!scrape.text.contains("raw-path-marker"), "the raw path is log-only")
        #expect(!scrape.text.contains("raw-pipeline-marker"), "the raw pipeline is log-only")
    }

    /// The twenty-fourth session's stop CI: each `RequestMetrics` and `AccessLog` took a `pthread_key_t` of its
    /// own, the end-to-end suites make a gateway per test, and past POSIX's 1024 keys the next one trapped
    /// ("pthread_key_create failed (11)"). Now one key per kind serves them all; a thread's cache of instruments is
    /// started over when another instance records on it, so each still counts only its own.
    @Test(
        "1,200 metrics and access logs alive at once (past PTHREAD_KEYS_MAX), recording in turn on one thread: each counts only its own",
        .cpuBound
    )
    func manyInstancesOneThread() throws {
        let quiet = Logger(label: "access") { _ in SwiftLogNoOpLogHandler() }
        let all = (0..<600).map { _ in (GatewayMetrics(), AccessLog(logger: quiet)) }
        for round in 0..<3 {
            for (index, (metrics, log)) in all.enumerated() where round <= index % 3 {
                let record = Self.record(.rest, operation: "triggerNamespacePipeline")
                metrics.requests.requestStarted(.rest)
                metrics.requests.requestFinished(record)
                log.requestFinished(record)
            }
        }
        for (index, (metrics, _)) in all.enumerated() {
            let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
            #expect(scrape.samples[Self.restTrigger] == Double(index % 3 + 1), "instance \(index)")
        }
    }

    @Test("a record differing from the one before in one label only counts under its own labels, not the last one's")
    func oneLabelApart() throws {
        // The cache compares each record with the last combination field by field (`Key.matches`): every label,
        // and the grpc-status absent versus 0, must tell two records apart, each in both orders.
        let metrics = GatewayMetrics()
        let base = Self.record(.grpc, operation: "/a.S/M", route: "demo/*", mode: "sync", status: 200, grpcStatus: 0)
        var variants: [(RequestRecord, String)] = []
        func variant(_ change: (inout RequestRecord) -> Void, _ labels: String) {
            var record = base
            change(&record)
            variants.append((record, labels))
        }
        variant({ _ in }, #"frontend="grpc",operation="/a.S/M",route="demo/*",mode="sync",code="OK""#)
        variant({ $0.frontend = .rest }, #"frontend="rest",operation="/a.S/M",route="demo/*",mode="sync",code="OK""#)
        variant(
            { $0.operation = "/a.S/N" }, #"frontend="grpc",operation="/a.S/N",route="demo/*",mode="sync",code="OK""#)
        variant({ $0.route = "other/*" }, #"frontend="grpc",operation="/a.S/M",route="other/*",mode="sync",code="OK""#)
        variant({ $0.route = nil }, #"frontend="grpc",operation="/a.S/M",route="none",mode="sync",code="OK""#)
        variant({ $0.mode = "stream" }, #"frontend="grpc",operation="/a.S/M",route="demo/*",mode="stream",code="OK""#)
        variant({ $0.mode = nil }, #"frontend="grpc",operation="/a.S/M",route="demo/*",mode="none",code="OK""#)
        variant(
            { $0.grpcStatus = 5 }, #"frontend="grpc",operation="/a.S/M",route="demo/*",mode="sync",code="NOT_FOUND""#)
        variant({ $0.grpcStatus = nil }, #"frontend="grpc",operation="/a.S/M",route="demo/*",mode="sync",code="200""#)
        variant(
            { ($0.grpcStatus, $0.status) = (nil, 404) },
            #"frontend="grpc",operation="/a.S/M",route="demo/*",mode="sync",code="404""#)
        // The base, then a variant, for each variant: every variant follows the base and the base follows every
        // variant. The base counts once per variant, and once more as the first variant.
        for (record, _) in variants {
            for finished in [base, record] {
                metrics.requests.requestStarted(finished.frontend)
                metrics.requests.requestFinished(finished)
            }
        }
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        for (index, (_, labels)) in variants.enumerated() {
            let expected = index == 0 ? Double(variants.count + 1) : 1
            #expect(
                scrape.samples["trigger_gateway_requests_total{\(labels)}"] == expected, "\(labels)\n\(scrape.text)")
        }
        let series = scrape.samples.keys.filter { $0.hasPrefix("trigger_gateway_requests_total{") }
        #expect(series.count == variants.count)
    }

    @Test("records finished on many threads at once all count, each thread with its own cache of instruments")
    func concurrentThreads() async {
        let metrics = GatewayMetrics()
        let threads = 8
        let perThread = 500
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<threads {
                group.addTask {
                    // A thread of its own, as an event loop is: `Thread` rather than the cooperative pool.
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        let thread = Thread {
                            for _ in 0..<perThread {
                                metrics.requests.requestStarted(.rest)
                                metrics.requests.requestFinished(
                                    Self.record(.rest, operation: "triggerNamespacePipeline"))
                            }
                            done.resume()
                        }
                        thread.start()
                    }
                }
            }
        }
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[Self.restTrigger] == Double(threads * perThread))
        #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="rest"}"#] == 0)
    }

    @Test(
        "requests cut before the answer's end count by frontend and who cut them (DC, SI, DPE, DT); whole answers do not"
    )
    func cutRequests() {
        let metrics = GatewayMetrics()
        var left = Self.record(.rest, operation: "triggerNamespacePipeline", status: 499)
        left.termination = .downstreamDisconnected
        var stalled = Self.record(.grpc, operation: "/x.Y/Z", grpcStatus: 1)
        stalled.termination = .streamIdleTimeout
        var broken = Self.record(.grpc, operation: "/x.Y/Z", grpcStatus: 1)
        broken.termination = .downstreamProtocolError
        var late = Self.record(.grpc, operation: "/x.Y/Z", grpcStatus: 4)
        late.termination = .downstreamDeadline
        let records = [
            left, left, stalled, broken, broken, late, Self.record(.rest, operation: "triggerNamespacePipeline"),
        ]
        for record in records {
            metrics.requests.requestStarted(record.frontend)
            metrics.requests.requestFinished(record)
        }
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        func cut(_ frontend: String, _ flag: String) -> Double? {
            scrape.samples[#"trigger_gateway_requests_cut_total{frontend="\#(frontend)",response_flags="\#(flag)"}"#]
        }
        #expect(cut("rest", "DC") == 2, "\(scrape.text)")
        #expect(cut("rest", "SI") == 0)
        #expect(cut("grpc", "DC") == 0)
        #expect(cut("grpc", "SI") == 1)
        #expect(cut("grpc", "DPE") == 2)
        #expect(cut("rest", "DPE") == 0)
        #expect(cut("grpc", "DT") == 1)
        #expect(cut("rest", "DT") == nil, "REST has no client deadline")
    }

    @Test("an answer cut after its record was written counts as a cut alone: not as a request, nor in flight")
    func answerCutAfterRecord() {
        let metrics = GatewayMetrics()
        let answered = Self.record(.rest, operation: "triggerNamespacePipeline")
        metrics.requests.requestStarted(.rest)
        metrics.requests.requestFinished(answered)
        metrics.requests.answerCutAfterRecord(.rest, .streamIdleTimeout)
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[#"trigger_gateway_requests_cut_total{frontend="rest",response_flags="SI"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_requests_cut_total{frontend="grpc",response_flags="SI"}"#] == 0)
        #expect(scrape.samples[Self.restTrigger] == 1, "\(scrape.text)")
        #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="rest"}"#] == 0)
    }

    @Test("in-flight requests: up at the head, down at the end, per frontend")
    func inFlight() {
        let metrics = GatewayMetrics()
        metrics.requests.requestStarted(.rest)
        metrics.requests.requestStarted(.rest)
        metrics.requests.requestStarted(.grpc)
        metrics.requests.requestFinished(Self.record(.rest, operation: "triggerNamespacePipeline"))
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="rest"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_requests_in_flight{frontend="grpc"}"#] == 1)
    }

    @Test("every family has # HELP and # TYPE, names follow the conventions, and promtool accepts the scrape")
    func exposition() throws {
        let metrics = GatewayMetrics()
        metrics.requests.requestStarted(.rest)
        metrics.requests.requestFinished(Self.record(.rest, operation: "triggerNamespacePipeline", bytesIn: 10))
        let pool = metrics.pool("runner", endpoints: ["127.0.0.1:1", "127.0.0.1:2"])
        pool.recordRejected()
        pool.recordEjection(endpoint: 0)
        pool.recordRetry(from: 0)
        pool.recordTry(endpoint: 1, nanoseconds: 3_000_000)
        pool.recordTry(endpoint: 0, outcome: .failed(.connectionFailure), nanoseconds: 1_000_000)
        pool.recordTry(endpoint: 0, outcome: .cancelled, nanoseconds: 1_000_000)
        pool.recordFailure(endpoint: 0, reason: .connectionFailure)
        pool.recordFailure(endpoint: 0, reason: .connectionFailure)
        pool.recordFailure(endpoint: nil, reason: .overflow)
        // The connection budget's refusal comes after the pick: still the gateway's overload, not the endpoint's.
        pool.recordFailure(endpoint: 0, reason: .overflow)
        pool.recordFailure(endpointNamed: "127.0.0.1:2", reason: .requestTimeout)
        pool.recordFailure(endpointNamed: "elsewhere:1", reason: .requestTimeout)
        pool.setLevels(inFlight: 2, queued: 1)
        pool.setEndpoint(0, available: false, inFlight: 0)
        pool.setEndpoint(1, available: true, inFlight: 2)
        metrics.async.recordAccepted()
        metrics.async.recordClaimed(lagSeconds: 0.002)
        metrics.async.recordFinished(.succeeded)
        metrics.async.recordRunEnded()
        metrics.store.record("enqueue", seconds: 0.001, failed: false)
        metrics.store.record("claim", seconds: 0.5, failed: true)
        metrics.webhooks.register(route: "quiet/*")
        metrics.webhooks.recordAttempt(.httpError, route: "acme/*")
        metrics.webhooks.recordAttempt(.success, route: "acme/*")
        metrics.webhooks.recordDelivery(.delivered, route: "acme/*")
        metrics.schedules.recordTick(schedule: "nightly", outcome: "fired")
        metrics.connections.opened(.http2, tls: false)
        metrics.connections.acceptedConnection()
        metrics.connections.acceptedConnection()
        metrics.connections.setBackendConnections(open: 5, idle: 3, limit: 81, refusedTotal: 2)
        metrics.config.setDigest("sha256:abc")
        metrics.config.recordReload(.refused, at: 1_700_000_000)
        metrics.setListenerCertificateExpiry(1_800_000_000)

        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(!scrape.samples.isEmpty)
        // Prometheus' standard process metrics keep their standard names (review 10, finding 3).
        let standard: Set = [
            "process_start_time_seconds", "process_open_fds", "process_max_fds", "process_cpu_seconds_total",
            "process_resident_memory_bytes", "process_virtual_memory_bytes",
        ]
        for series in scrape.samples.keys {
            let family = scrape.family(of: series)
            #expect(family.hasPrefix("trigger_gateway_") || standard.contains(family), "\(series)")
            #expect(scrape.help[family]?.isEmpty == false, "no HELP for \(family)")
            let type = try #require(scrape.type[family], "no TYPE for \(family)")
            #expect((type == "counter") == family.hasSuffix("_total"), "\(family) is a \(type)")
        }
        for (family, type) in scrape.type where type == "histogram" {
            #expect(family.hasSuffix("_seconds") || family.hasSuffix("_bytes"), "\(family): a unit in base units")
        }
        #expect(scrape.samples["trigger_gateway_tls_certificate_expiry_timestamp_seconds"] == 1_800_000_000)
        // Without TLS (a reload that removed it) the series is absent, not 0 (review 26 M7), and comes back.
        metrics.setListenerCertificateExpiry(nil)
        let cleartext = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(cleartext.samples["trigger_gateway_tls_certificate_expiry_timestamp_seconds"] == nil)
        #expect(cleartext.type["trigger_gateway_tls_certificate_expiry_timestamp_seconds"] == nil)
        metrics.setListenerCertificateExpiry(1_900_000_000)
        let renewed = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(renewed.samples["trigger_gateway_tls_certificate_expiry_timestamp_seconds"] == 1_900_000_000)
        let openFDs = try #require(scrape.samples["process_open_fds"])
        let maxFDs = try #require(scrape.samples["process_max_fds"])
        #expect(openFDs >= 3 && openFDs < maxFDs, "\(openFDs) of \(maxFDs)")
        // This test process started before this scrape, and less than a day ago.
        let started = try #require(scrape.samples["process_start_time_seconds"])
        let now = Date().timeIntervalSince1970
        #expect(started <= now + 1 && started > now - 86_400, "\(started) vs \(now)")
        // This process's CPU and memory: some CPU spent, a resident set of at least a MiB inside its virtual size.
        // The counter grows by what was spent between scrapes, never backwards.
        let cpu = try #require(scrape.samples["process_cpu_seconds_total"])
        let resident = try #require(scrape.samples["process_resident_memory_bytes"])
        let virtual = try #require(scrape.samples["process_virtual_memory_bytes"])
        #expect(cpu > 0 && resident > 1_048_576 && resident < virtual, "\(cpu) s, \(resident) of \(virtual) B")
        var spin = 0.0
        for i in 0..<3_000_000 { spin += Double(i & 7) }
        let again = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        let cpuAgain = try #require(again.samples["process_cpu_seconds_total"])
        #expect(cpuAgain > cpu, "\(cpuAgain) after \(cpu) (spun \(spin))")
        #expect(scrape.samples[#"trigger_gateway_pool_rejected_total{pool="runner"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_pool_ejections_total{pool="runner",endpoint="127.0.0.1:1"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_pool_endpoint_available{pool="runner",endpoint="127.0.0.1:1"}"#] == 0)
        #expect(scrape.samples[#"trigger_gateway_pool_endpoint_in_flight{pool="runner",endpoint="127.0.0.1:2"}"#] == 2)
        #expect(
            scrape.samples[
                #"trigger_gateway_backend_request_duration_seconds_bucket{pool="runner",endpoint="127.0.0.1:2",outcome="ok",le="0.005"}"#
            ] == 1)
        // Each try under its outcome (review 26 L5): a refused connect does not land among the answered calls.
        let tries = #"trigger_gateway_backend_request_duration_seconds_count{pool="runner",endpoint="127.0.0.1:1","#
        #expect(scrape.samples[tries + #"outcome="ok"}"#] == 0)
        #expect(scrape.samples[tries + #"outcome="UF"}"#] == 1)
        #expect(scrape.samples[tries + #"outcome="cancelled"}"#] == 1)
        #expect(scrape.samples[tries + #"outcome="UT"}"#] == 0, "made up front")
        let failures = #"trigger_gateway_backend_failures_total{pool="runner","#
        #expect(scrape.samples[failures + #"endpoint="127.0.0.1:1",reason="UF"}"#] == 2)
        #expect(scrape.samples[failures + #"endpoint="127.0.0.1:1",reason="UC"}"#] == 0, "made up front")
        #expect(scrape.samples[failures + #"endpoint="127.0.0.1:2",reason="UT"}"#] == 1)
        #expect(scrape.samples[failures + #"endpoint="",reason="UO"}"#] == 2)
        #expect(scrape.samples["trigger_gateway_backend_connections_open"] == 5)
        #expect(scrape.samples["trigger_gateway_backend_connections_idle"] == 3, "of the open ones, with no call")
        #expect(scrape.samples["trigger_gateway_backend_connections_limit"] == 81)
        #expect(scrape.samples["trigger_gateway_backend_connections_refused_total"] == 2)
        #expect(scrape.samples[failures + #"endpoint="127.0.0.1:1",reason="UO"}"#] == 0, "UO is never the endpoint's")
        #expect(scrape.samples[failures + #"endpoint="",reason="UT"}"#] == 1, "an unknown endpoint: the pool's row")
        #expect(scrape.type["trigger_gateway_async_queued"] == nil, "per pool: none before the first count")
        #expect(scrape.type["trigger_gateway_async_dispatcher_last_claim_timestamp_seconds"] == nil, "0 would be 1970")
        #expect(scrape.samples["trigger_gateway_async_attempts_total"] == 1)
        #expect(scrape.samples[#"trigger_gateway_store_errors_total{operation="claim"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_store_errors_total{operation="enqueue"}"#] == 0)
        #expect(scrape.samples[#"trigger_gateway_webhook_deliveries_total{route="acme/*",outcome="delivered"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_webhook_attempts_total{route="acme/*",outcome="http_error"}"#] == 1)
        #expect(
            scrape.samples[#"trigger_gateway_webhook_attempts_total{route="acme/*",outcome="transport_error"}"#] == 0)
        #expect(scrape.samples[#"trigger_gateway_webhook_deliveries_total{route="quiet/*",outcome="given_up"}"#] == 0)
        #expect(scrape.samples[#"trigger_gateway_connections_open{protocol="http2",tls="false"}"#] == 1)
        #expect(scrape.samples["trigger_gateway_config_last_reload_successful"] == 0)
        #expect(scrape.samples["trigger_gateway_connections_accepted_total"] == 2)
        #expect(scrape.samples["trigger_gateway_config_restart_required"] == 0)
        let build =
            #"trigger_gateway_build_info{version="\#(GatewayBuild.version)",revision="\#(GatewayBuild.revision)"}"#
        #expect(scrape.samples[build] == 1, "\(scrape.text)")
        #expect(scrape.type["trigger_gateway_build_info"] == "gauge")
        #expect(try promtoolFindings(scrape.text) == "", "\(scrape.text)")
    }

    @Test(
        "async_queued{pool} and async_oldest_queued_timestamp_seconds{pool}: absent after a count that failed, back with the next count; a pool a reload removed goes"
    )
    func queueUnknown() throws {
        let metrics = GatewayMetrics()
        func scrape() -> Exposition { Exposition(String(decoding: metrics.scrape(), as: UTF8.self)) }
        let (queuedA, oldestA) = (
            #"trigger_gateway_async_queued{pool="a"}"#,
            #"trigger_gateway_async_oldest_queued_timestamp_seconds{pool="a"}"#
        )
        let queuedB = #"trigger_gateway_async_queued{pool="b"}"#
        metrics.async.recordQueue(byPool: ["a": (5, 1000), "b": (0, 2000)])
        #expect(scrape().samples[queuedA] == 5 && scrape().samples[oldestA] == 1000 && scrape().samples[queuedB] == 0)
        metrics.async.recordQueueUnknown()
        metrics.async.recordQueueUnknown()
        let unknown = scrape()
        #expect(unknown.samples[queuedA] == nil && unknown.samples[oldestA] == nil && unknown.samples[queuedB] == nil)
        #expect(unknown.type["trigger_gateway_async_queued"] == nil, "no HELP/TYPE without a sample")
        #expect(unknown.type["trigger_gateway_async_oldest_queued_timestamp_seconds"] == nil)
        #expect(try promtoolFindings(unknown.text) == "", "\(unknown.text)")
        metrics.async.recordQueue(byPool: ["a": (7, 1500)])
        let back = scrape()
        #expect(back.samples[queuedA] == 7 && back.samples[oldestA] == 1500)
        #expect(back.samples[queuedB] == nil, "pool b is not configured any more")
        #expect(back.text.components(separatedBy: "# TYPE trigger_gateway_async_queued gauge").count == 2)
        #expect(try promtoolFindings(back.text) == "", "\(back.text)")
    }

    @Test("config_restart_required: 0 at start, set by each applied reload, kept by a refused one")
    func restartRequired() {
        let metrics = GatewayMetrics()
        func value() -> Double? {
            Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
                .samples["trigger_gateway_config_restart_required"]
        }
        #expect(value() == 0)
        metrics.config.recordReload(.applied, restartRequired: true, at: 1)
        #expect(value() == 1)
        metrics.config.recordReload(.refused, at: 2)
        #expect(value() == 1, "the file in force is still the one that changed a restart-only key")
        metrics.config.recordReload(.applied, restartRequired: false, at: 3)
        #expect(value() == 0)
    }

    @Test("a config digest replaces the last one: one config_info series")
    func configDigest() {
        let metrics = GatewayMetrics()
        metrics.config.setDigest("sha256:one")
        metrics.config.setDigest("sha256:two")
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[#"trigger_gateway_config_info{digest="sha256:two"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_config_info{digest="sha256:one"}"#] == nil)
    }

    @Test("a retired pool's series go, except those the pool of the same name in force shares (and keeps counting)")
    func poolUnregister() {
        let metrics = GatewayMetrics()
        let old = metrics.pool("runner", endpoints: ["a:1", "b:2"])
        old.recordEjection(endpoint: 0)
        old.recordEjection(endpoint: 1)
        let gone = metrics.pool("gone", endpoints: ["c:3"])
        gone.recordRejected()
        // A reload rebuilds "runner" with one endpoint carried over, and drops "gone".
        let live = metrics.pool("runner", endpoints: ["a:1"])
        live.recordEjection(endpoint: 0)
        old.unregister(keeping: live)
        gone.unregister(keeping: nil)
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[#"trigger_gateway_pool_ejections_total{pool="runner",endpoint="a:1"}"#] == 2)
        #expect(scrape.samples[#"trigger_gateway_pool_ejections_total{pool="runner",endpoint="b:2"}"#] == nil)
        #expect(scrape.samples.keys.allSatisfy { !$0.contains(#"endpoint="b:2""#) }, "\(scrape.text)")
        #expect(
            scrape.samples[#"trigger_gateway_backend_failures_total{pool="runner",endpoint="",reason="UO"}"#] == 0)
        #expect(scrape.samples.keys.allSatisfy { !$0.contains(#"pool="gone""#) }, "\(scrape.text)")
        #expect(scrape.samples[#"trigger_gateway_pool_in_flight{pool="runner"}"#] != nil)
    }

    @Test("a reload's schedules: those removed lose their series, those kept keep their counts")
    func scheduleSeries() {
        let metrics = GatewayMetrics()
        for name in ["nightly", "hourly"] { metrics.schedules.register(schedule: name, outcome: "fired") }
        metrics.schedules.recordTick(schedule: "nightly", outcome: "fired")
        metrics.schedules.keepOnly(schedules: ["nightly"])
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[#"trigger_gateway_schedule_ticks_total{schedule="nightly",outcome="fired"}"#] == 1)
        #expect(scrape.samples[#"trigger_gateway_schedule_ticks_total{schedule="hourly",outcome="fired"}"#] == nil)
    }

    @Test("collectors run before each scrape and stop when cancelled")
    func collectors() {
        let metrics = GatewayMetrics()
        let pool = metrics.pool("runner", endpoints: [])
        final class Level: Sendable { let value = Mutex(3) }
        let level = Level()
        let token = metrics.addCollector { pool.setLevels(inFlight: level.value.withLock { $0 }, queued: 0) }
        #expect(
            Exposition(String(decoding: metrics.scrape(), as: UTF8.self)).samples[
                #"trigger_gateway_pool_in_flight{pool="runner"}"#] == 3)
        token.cancel()
        level.value.withLock { $0 = 5 }
        #expect(
            Exposition(String(decoding: metrics.scrape(), as: UTF8.self)).samples[
                #"trigger_gateway_pool_in_flight{pool="runner"}"#] == 3)
    }
}
