import AsyncHTTPClient
import Backends
import Crypto
package import GatewayConfig
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
package import Logging
package import NIOCore
import NIOHTTP1
import NIOSSL
package import Observability
import ServiceLifecycle
import Synchronization
package import TriggerModel

/// Delivers completion webhooks: `POST` of the operation JSON to a route's URL, signed with
/// `trigger-gateway-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, retried with
/// doubling backoff on connection failures and non-2xx answers (a 3xx too: redirects are not followed).
///
/// The HTTP is AsyncHTTPClient's: one `HTTPClient` per sender (one sender per process), on the gateway's event
/// loop group, made at the first delivery and shut down by ``shutdown()`` (the `WebhookService` does that when the
/// gateway stops). Its pool keeps connections to a receiver alive between deliveries. `https://` URLs are
/// verified as a browser would (system trust store, the certificate must name the host), against the
/// webhook's `ca_file` instead of the system store when one is configured.
///
/// Delivery is at least once when the caller passes a `record` hook (the gateway does: `AsyncOperations`): the
/// store keeps each pending delivery, with the attempts made and when the next is due, from the moment the
/// operation's result is stored; each attempt is recorded there, and a delivery this process did not finish (it
/// stopped, or died) is claimed again from the store and resumed where its schedule stood. Without the hook (tests
/// of the sender alone) delivery is in memory: retries pending at a stop are dropped, each a warning naming its
/// operation and a `trigger_gateway_webhook_deliveries_total{outcome="dropped"}`.
///
/// The trigger's W3C trace context (`traceparent`, `tracestate`, stored with the operation) goes with each
/// delivery, so the receiver's work joins the trace of the request that started the run (issue 16, item 3).
package final class WebhookSender: Sendable {
    private let group: any EventLoopGroup
    private let logger: Logger
    /// `trigger_gateway_webhook_*` on /metrics; nil records nothing.
    private let metrics: WebhookMetrics?
    /// What the backoff between attempts sleeps on; tests pass a manual clock to step retries.
    private let clock: any Clock<Duration>
    private let state = Mutex(State())
    /// `webhook given up` per route: the first at once, then at most one per ``givenUpWarningInterval`` of `clock`,
    /// with the give-ups held back since (review 26 M4: a receiver down under 100 operations a minute was 100
    /// warnings a minute). The counters count every one.
    private let givenUpLog: FailureLogLimiter

    /// The least time between two `webhook given up` warnings of one route: 10 s, as the sync path's
    /// `trigger failed` (one receiver down is one condition; its `webhook delivery failed` info lines and the
    /// counters say the rest).
    package static let givenUpWarningInterval = Duration.seconds(10)

    private struct State {
        /// Made at the first delivery, so a sender that never delivers needs no shutdown.
        var client: HTTPClient?
        var stopping = false
        var nextDelivery = 0
        var deliveries: [Int: Delivery] = [:]
    }

    /// A delivery's task and whether it is waiting out a backoff (which ``shutdown()`` cuts short) rather than
    /// posting (which it lets finish, bounded by the webhook's timeout).
    private struct Delivery {
        var task: Task<Void, Never>?
        var waiting = false
    }

    package init(
        group: any EventLoopGroup,
        logger: Logger,
        metrics: WebhookMetrics? = nil,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.group = group
        self.logger = logger
        self.metrics = metrics
        self.clock = clock
        let sinceStart = clock.stopwatch()
        self.givenUpLog = FailureLogLimiter(interval: TimeAmount(Self.givenUpWarningInterval)) {
            NIODeadline.uptimeNanoseconds(UInt64(TimeAmount(sinceStart()).nanoseconds))
        }
    }

    /// Deliveries not yet done (for tests and shutdown logs).
    package var pending: Int { state.withLock { $0.deliveries.count } }

    /// Records a delivery's progress in the store (`OperationStore.recordWebhookAttempt`): `attempts` made in
    /// all, and the wait until the next one (nil: the delivery is over: delivered or given up). Returns false when
    /// the store says the delivery is no longer this sender's (another instance took it over): it stops then.
    package typealias Record = @Sendable (_ attempts: Int, _ nextAttemptIn: Duration?) async -> Bool

    /// Starts delivering `body` for operation `id` in the background, with the trigger's trace context;
    /// `requestID` (the trigger's) goes into the log lines of failed deliveries. `route`: the configured pattern of
    /// the route whose webhook this is (`RouteTable.Entry.pattern`), the counters' `route` label and the key of the
    /// `webhook given up` warning's rate limit. `attemptsMade`: attempts an
    /// earlier run already made (a delivery resumed from the store): this one continues their count and their
    /// backoff (`backoff` doubled once per attempt made); none left, it is given up at once. `record`: see
    /// ``Record`` and the type's documentation. After ``shutdown()`` began, the delivery is not sent (logged):
    /// with `record` it stays pending in the store for the next start, else it is dropped.
    package func deliver(
        _ body: ByteBuffer,
        operationID id: String,
        requestID: String? = nil,
        traceParent: String? = nil,
        traceState: String? = nil,
        to webhook: WebhookConfiguration,
        route: String,
        attemptsMade: Int = 0,
        record: Record? = nil
    ) {
        let trace = (parent: traceParent, state: traceState)
        let key: Int? = state.withLock { state in
            guard !state.stopping else { return nil }
            state.nextDelivery += 1
            state.deliveries[state.nextDelivery] = Delivery()
            return state.nextDelivery
        }
        guard let key else {
            if record == nil { metrics?.recordDelivery(.dropped, route: route) }
            logger.warning(
                "webhook not sent: the gateway is stopping",
                metadata: [
                    "operation.id": "\(id)", "request_id": "\(requestID ?? "")", "webhook.url": "\(webhook.url)",
                ])
            return
        }
        let task = Task {
            defer { _ = self.state.withLock { $0.deliveries.removeValue(forKey: key) } }
            let first = max(attemptsMade, 0) + 1
            if first > webhook.maxAttempts {
                // Its attempts were made before (a reload lowered `max_attempts` meanwhile).
                metrics?.recordDelivery(.givenUp, route: route)
                logGivenUp(
                    route: route,
                    [
                        "operation.id": "\(id)", "request_id": "\(requestID ?? "")", "webhook.url": "\(webhook.url)",
                        "webhook.attempts": .stringConvertible(attemptsMade),
                    ])
                _ = await record?(attemptsMade, nil)
                return
            }
            // Doubled once per attempt already made, so a resumed delivery keeps its schedule.
            var wait = webhook.backoff
            for _ in 1..<first { wait *= 2 }
            for attempt in first...webhook.maxAttempts {
                let status: Int
                // Why this attempt failed, for the log: the receiver's status, or what kept it from answering.
                var failure: String
                do {
                    status = try await post(body, operationID: id, trace: trace, to: webhook)
                    failure = "HTTP \(status)"
                } catch {
                    status = 0
                    failure = Self.describe(error, timeout: webhook.timeout)
                }
                // Counted before the failure's line is written: a reader of the line then sees the count too.
                metrics?.recordAttempt(
                    status == 0 ? .transportError : (200..<300).contains(status) ? .success : .httpError, route: route)
                if !(200..<300).contains(status) {
                    // Each failed attempt, a receiver's non-2xx answer as much as no answer (review 26 M4: a
                    // receiver answering 500 showed first in the give-up warning, attempts later).
                    var metadata: Logger.Metadata = [
                        "operation.id": "\(id)", "request_id": "\(requestID ?? "")",
                        "webhook.url": "\(webhook.url)", "webhook.attempt": .stringConvertible(attempt),
                        "error": "\(failure)",
                    ]
                    if status != 0 { metadata["http.status"] = .stringConvertible(status) }
                    logger.info("webhook delivery failed", metadata: metadata)
                }
                if (200..<300).contains(status) {
                    metrics?.recordDelivery(.delivered, route: route)
                    _ = await record?(attempt, nil)
                    return
                }
                if attempt == webhook.maxAttempts {
                    metrics?.recordDelivery(.givenUp, route: route)
                    // The last attempt's cause and how many were made (review 12, finding 8: `http.status=0` read
                    // like a receiver's answer when none had come).
                    var metadata: Logger.Metadata = [
                        "operation.id": "\(id)", "request_id": "\(requestID ?? "")", "webhook.url": "\(webhook.url)",
                        "webhook.attempts": .stringConvertible(attempt), "error": "\(failure)",
                    ]
                    if status != 0 { metadata["http.status"] = .stringConvertible(status) }
                    logGivenUp(route: route, metadata)
                    _ = await record?(attempt, nil)
                    return
                }
                if let record, await !record(attempt, wait) {
                    // Its reservation lapsed (this POST outlasted it) and another instance resumed it.
                    logger.info(
                        "webhook delivery taken over by another instance",
                        metadata: ["operation.id": "\(id)", "webhook.attempts": .stringConvertible(attempt)])
                    return
                }
                let stopping = state.withLock { state in
                    state.deliveries[key]?.waiting = true
                    return state.stopping
                }
                if !stopping { try? await clock.sleep(for: wait) }
                guard
                    state.withLock({ state in
                        state.deliveries[key]?.waiting = false
                        return !state.stopping
                    })
                else {
                    if record != nil {
                        // Recorded above: the next start (or another instance) resumes it when due.
                        logger.info(
                            "webhook retries left pending: the gateway is stopping; they resume at the next start",
                            metadata: [
                                "operation.id": "\(id)", "request_id": "\(requestID ?? "")",
                                "webhook.url": "\(webhook.url)", "webhook.attempts": .stringConvertible(attempt),
                            ])
                        return
                    }
                    metrics?.recordDelivery(.dropped, route: route)
                    logger.warning(
                        "webhook retries dropped: the gateway is stopping",
                        metadata: [
                            "operation.id": "\(id)", "request_id": "\(requestID ?? "")",
                            "webhook.url": "\(webhook.url)",
                        ])
                    return
                }
                wait *= 2
            }
        }
        let cancel = state.withLock { state in
            state.deliveries[key]?.task = task
            return state.stopping && state.deliveries[key]?.waiting == true
        }
        if cancel { task.cancel() }
    }

    /// `webhook given up` for `route`, unless the rate limit holds it back (``givenUpLog``); with
    /// `webhook.given_up_held_back` (the give-ups of the route not logged since its last line), so the line names
    /// the latest operation and says how many more there were.
    private func logGivenUp(route: String, _ metadata: Logger.Metadata) {
        guard let heldBack = givenUpLog.admit(route) else { return }
        var metadata = metadata
        metadata["route"] = "\(route)"
        if heldBack > 0 { metadata["webhook.given_up_held_back"] = .stringConvertible(heldBack) }
        logger.warning("webhook given up", metadata: metadata)
    }

    /// Why a pending delivery is not sent (``dropped(operationID:requestID:route:reason:)``).
    package enum DropReason: Sendable {
        /// The operation's route has no webhook any more (a reload removed it).
        case noWebhook
        /// The operation's stored result cannot be read (`PendingWebhook.lostResult`): its body would be the
        /// result without its binaries.
        case resultLost(GatewayError)
    }

    /// A pending delivery that is not sent (`reason`): counted `dropped` under `route` (the pattern of the route
    /// that matches its operation now, `none` when none does), a warning naming its operation. The caller clears it
    /// in the store.
    package func dropped(operationID id: String, requestID: String?, route: String, reason: DropReason = .noWebhook) {
        metrics?.recordDelivery(.dropped, route: route)
        var metadata: Logger.Metadata = ["operation.id": "\(id)", "request_id": "\(requestID ?? "")"]
        switch reason {
        case .noWebhook:
            logger.warning("webhook dropped: the operation's route has no webhook any more", metadata: metadata)
        case .resultLost(let error):
            metadata["route"] = "\(route)"
            metadata["error"] = "\(error)"
            logger.warning("webhook dropped: the operation's stored result is missing", metadata: metadata)
        }
    }

    /// Stops delivering: backoff waits end at once (their retries stay pending in the store, or are dropped
    /// without one), POSTs under way finish (each bounded by its webhook's timeout) and are recorded, then the
    /// HTTP client shuts down. Idempotent.
    package func shutdown() async {
        let (running, waiting, client) = state.withLock { state in
            state.stopping = true
            let running = state.deliveries.values.compactMap(\.task)
            let waiting = state.deliveries.values.filter(\.waiting).compactMap(\.task)
            let client = state.client
            state.client = nil
            return (running, waiting, client)
        }
        for task in waiting { task.cancel() }
        for task in running { await task.value }
        do {
            try await client?.shutdown()
        } catch {
            logger.warning("closing the webhook client failed", metadata: ["error": "\(error)"])
        }
    }

    /// What kept a POST from being answered, in words an operator reads at 3am, never a library's type name
    /// (review 17: `HTTPClientError.remoteConnectionClosed` reached the log):
    ///
    /// - AsyncHTTPClient's timeouts (its `deadlineExceeded` names neither the limit nor the webhook):
    ///   `timeout after 10s` (the webhook's `timeout`, which bounds the whole POST);
    /// - a socket error: the system's text for it, `Connection refused` (NIO's `IOError` reads "connection
    ///   reset (error set): …" for a refused connect);
    /// - TLS: `TLS handshake failed: the receiver's certificate did not verify …`, `… is not valid for "host"`,
    ///   `… the receiver does not speak TLS`, or the alert it sent;
    /// - the receiver closing the connection before its answer: `the receiver closed the connection before
    ///   answering`;
    /// - the webhook's `ca_file` unreadable at the delivery: `ca_file <path> cannot be read as PEM certificates`;
    /// - AsyncHTTPClient's other errors: its short description (`Body length mismatch`);
    /// - anything else: the error's case in words, without its type (`ChannelError.ioOnClosedChannel` is
    ///   `io on closed channel`).
    ///
    /// An answer, whatever its status, is not an error here: the caller logs `HTTP <status>`.
    static func describe(_ error: any Error, timeout: Duration) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout, .tlsHandshakeTimeout:
                return "timeout after \(Backends.describe(TimeAmount(timeout)))"
            case .remoteConnectionClosed:
                return "the receiver closed the connection before answering"
            default:
                // AsyncHTTPClient's own words for its case, without the type (`Body length mismatch`).
                return error.shortDescription
            }
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "TLS handshake failed: the receiver's certificate is not valid for the URL's host"
        }
        if let failure = TLSFailure(error) {
            let reason =
                switch failure {
                case .notVerified:
                    "the receiver's certificate did not verify (it is not signed by a CA the webhook trusts: its "
                        + "ca_file, or the system's CA store when it has none; or it has expired)"
                case .notTLS: "the receiver does not speak TLS (an https:// URL for an http:// receiver?)"
                case .alert(let name): "the receiver refused the TLS session (alert \(name))"
                case .other(let codes): codes.isEmpty ? "TLS error" : "TLS error " + codes.joined(separator: ", ")
                }
            return "TLS handshake failed: " + reason
        }
        if let error = error as? PostError { return error.description }
        return Self.words(error)
    }

    /// An error's case in words, without its type: `ChannelError.ioOnClosedChannel` reads `io on closed
    /// channel`. For errors with no wording of their own above; their associated values are kept.
    static func words(_ error: any Error) -> String {
        var text = Substring("\(error)")
        // `TypeName.caseName…` (AsyncHTTPClient's, NIO's descriptions): the type goes.
        if let dot = text.firstIndex(of: "."), text[..<dot].allSatisfy({ $0.isLetter || $0.isNumber }),
            text.first?.isUppercase == true
        {
            text = text[text.index(after: dot)...]
        }
        var out = ""
        for (index, character) in text.enumerated() {
            if character == "(" || character == ":" {
                out += text.dropFirst(index)
                break
            }
            if character.isUppercase, index > 0 { out += " " + character.lowercased() } else { out.append(character) }
        }
        return out
    }

    /// The signature header value for `body` at `timestamp` (seconds since 1970).
    package static func signature(secret: String, timestamp: Int64, body: ByteBuffer) -> String {
        var message = Array("\(timestamp).".utf8)
        message += body.readableBytesView
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(timestamp),v1=\(code.lowercaseHex)"
    }

    /// The shared client, made on first use; nil once ``shutdown()`` began.
    private var client: HTTPClient? {
        state.withLock { state in
            guard !state.stopping else { return nil }
            if let client = state.client { return client }
            var configuration = HTTPClient.Configuration()
            // A 3xx is an answer like any non-2xx: retried, never followed (the operator configured the URL).
            configuration.redirectConfiguration = .disallow
            // The operation JSON is sent as it is; answers are read and dropped, so no decompression.
            configuration.decompression = .disabled
            let client = HTTPClient(eventLoopGroup: group, configuration: configuration)
            state.client = client
            return client
        }
    }

    /// Errors of one POST besides AsyncHTTPClient's own.
    private enum PostError: Error, CustomStringConvertible {
        case stopping
        /// The file cannot be read or holds no PEM certificate (NIOSSL's error says no more).
        case caFile(String, any Error)

        var description: String {
            switch self {
            case .stopping: "the gateway is stopping"
            case .caFile(let path, _): "ca_file \(path) cannot be read as PEM certificates"
            }
        }
    }

    /// One POST, bounded as a whole (connect, TLS handshake, request, answer) by the webhook's `timeout`;
    /// returns the HTTP status. AsyncHTTPClient's pool retries a failed connect or handshake (with backoff)
    /// until that deadline, then throws the last connect error (a refused connection, the certificate problem).
    private func post(
        _ body: ByteBuffer,
        operationID id: String,
        trace: (parent: String?, state: String?),
        to webhook: WebhookConfiguration
    ) async throws -> Int {
        guard let client else { throw PostError.stopping }
        var request = HTTPClientRequest(url: webhook.requestURL)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "trigger-gateway-operation", value: id)
        if let parent = trace.parent {
            request.headers.add(name: "traceparent", value: parent)
            if let state = trace.state { request.headers.add(name: "tracestate", value: state) }
        }
        if let secret = webhook.secret {
            let now = Int64(Duration.nanosecondsSince1970 / 1_000_000_000)
            request.headers.add(
                name: "trigger-gateway-signature", value: Self.signature(secret: secret, timestamp: now, body: body))
        }
        if let caFile = webhook.caFile {
            // Read at each delivery (deliveries are rare next to a TLS handshake), so a CA file replaced on disk
            // counts from the next delivery on; the client's pool keys connections by the roots, so
            // keep-alive still holds between deliveries with the same CA.
            var tls = TLSConfiguration.makeClientConfiguration()
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw PostError.caFile(caFile, error)
            }
            request.tlsConfiguration = tls
        }
        request.body = .bytes(body)
        let response = try await client.execute(request, timeout: TimeAmount(webhook.timeout))
        // The answer's body is read and dropped, so its connection can serve the next delivery.
        for try await _ in response.body {}
        return Int(response.status.code)
    }
}

/// Shuts the webhook client down when the gateway stops: a service started before the async dispatcher, so
/// the `ServiceGroup` stops it after the dispatcher (whose last finished operations may still send webhooks).
package struct WebhookService: Service {
    let sender: WebhookSender

    package init(sender: WebhookSender) { self.sender = sender }

    package func run() async throws {
        try? await gracefulShutdown()
        // Outside the group's cancellation, as the store's close: a cancelled shutdown would cut POSTs short.
        let sender = self.sender
        await Task { await sender.shutdown() }.value
    }
}

extension Duration {
    /// Wall-clock nanoseconds since 1970, without Foundation.
    static var nanosecondsSince1970: Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
