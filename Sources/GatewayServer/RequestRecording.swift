import Logging
import NIOCore
import Observability
import Routing
import TriggerDispatch
import TriggerModel

/// One request's `RequestRecord` while its exchange is open, and when its head arrived; or ``none``, no request.
///
/// Each frontend keeps one per request in flight (HTTP/1.1: per connection; HTTP/2: per stream) and hands it
/// to ``FrontendServices/finish(_:)`` exactly once: when the response's last byte is queued, or when the
/// client resets the stream or closes the connection first.
///
/// A frontend holds ``none`` while no request is open, not an Optional: Swift 6.3 copies, assigns and destroys an
/// Optional of a struct this size (~230 bytes) through the runtime's generic value witnesses, ~280 instructions
/// each time even for nil, where this type's own are called directly (bench/README.md, "Branch hotpath5": five such
/// per HTTP/1.1 request). ``record`` is not to be read or changed in ``none`` (an assertion in debug builds): test
/// ``isOpen`` first where a request may not be open.
struct OpenRequest {
    private var openRecord: RequestRecord
    /// The head's arrival on the services' clock.
    let start: NIODeadline
    /// A response head went out (HTTP/1.1, REST over h2): the status is the one sent, not
    /// ``RequestRecord/clientClosedRequest``, if the client goes away under it.
    var sentHead = false
    /// false only in ``none``.
    let isOpen: Bool

    init(record: RequestRecord, start: NIODeadline) {
        self.openRecord = record
        self.start = start
        self.isOpen = true
    }

    private init() {
        openRecord = RequestRecord(
            requestID: "", frontend: .rest, httpVersion: "", method: "", path: "", operation: "", status: 0,
            durationNanoseconds: 0)
        start = .uptimeNanoseconds(0)
        isOpen = false
    }

    /// No request open (empty strings, no allocation).
    static var none: OpenRequest { OpenRequest() }

    /// The request's record; only while ``isOpen``.
    var record: RequestRecord {
        get {
            assert(isOpen, "the record of no open request was read")
            return openRecord
        }
        _modify {
            assert(isOpen, "the record of no open request was changed")
            yield &openRecord
        }
    }

    /// Puts `request` in place of this one: ``none``'s value is not destroyed first, as an assignment would
    /// destroy it. ``none`` holds only empty string literals and nils, which own no memory (the record's fields are
    /// changed only while ``isOpen``), so overwriting it leaves nothing behind; its destroy was a dozen string
    /// releases, ~270 instructions per HTTP/1.1 request (issue 11; bench/README.md, "Branch hotpath12"). An open
    /// request is replaced as by an assignment.
    mutating func open(_ request: consuming OpenRequest) {
        guard !isOpen else {
            self = request
            return
        }
        Self.initialize(&self, to: request)
    }

    /// `target.initialize(to: request)`, the request moved in (a closure over `request` could only copy it).
    private static func initialize(_ target: UnsafeMutablePointer<OpenRequest>, to request: consuming OpenRequest) {
        target.initialize(to: request)
    }

    /// The request, moved out (no copy), leaving ``none``; ``none`` itself when none was open.
    mutating func take() -> OpenRequest {
        var taken = OpenRequest.none
        swap(&taken, &self)
        return taken
    }
}

extension RequestRecord {
    /// The status of a REST request whose client went away before any response head was sent (nginx's 499,
    /// "client closed request"): no HTTP status was sent, and the request was not the gateway's failure.
    static let clientClosedRequest = 499
    /// The gRPC status of a call the client cancelled (RST_STREAM, connection closed) before the gateway sent
    /// its status: CANCELLED, as the client's library reports it.
    static let grpcCancelled = 1

    /// Names the pipeline a request asked for: the namespace and pipeline as sent, and the route that matched
    /// (`TriggerDispatcher.route(for:)`) with its pool (bounded: the configuration's strings, no copy). `mode`
    /// is the trigger's, nil for a request that names a pipeline without running it (its metadata, its runs).
    mutating func name(_ ref: PipelineRef, mode: TriggerMode?, route resolved: RouteTable.ResolvedRoute?) {
        namespace = ref.namespace
        pipeline = ref.pipeline
        self.mode = mode?.rawValue
        if let resolved {
            route = resolved.pattern
            pool = resolved.pool
        }
    }

    /// Names the pipeline and the principal as work that ran after the head learned them (``RequestNaming``).
    mutating func name(_ naming: RequestNaming) {
        if let ref = naming.ref { name(ref, mode: naming.mode, route: naming.route) }
        if let principal = naming.principal { self.principal = principal }
        if let operationID = naming.operationID { self.operationID = operationID }
    }

    /// What the sync call `call` told of its tries: the endpoint of the last and ``UpstreamDetail`` (one lock).
    mutating func upstream(of call: TriggerCancellation) {
        (endpoint, upstream) = call.endpointAndUpstream
    }

    /// The trace id of a W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, W3C
    /// Trace Context §3.2); nil when absent or malformed.
    mutating func trace(_ traceParent: String?) {
        guard let traceParent, let id = TraceParent.traceID(of: traceParent) else { return }
        traceID = id[...]
    }
}

/// The pipeline a request named and the principal it authenticated as, when only work that ran after its head
/// could tell (the Abacus.AI surface: `pipelineId` is a parameter of the body or the query, parsed off the event
/// loop; the Abacus.AI and Craft AI surfaces check their own credentials there): carried back on the response
/// (``RESTResponse/naming``), and put into the request's record (``RequestRecord/name(_:)``) by the frontend
/// that writes that response. Requests whose head names the pipeline (REST triggers, the Craft AI surface,
/// `GetNamespacePipeline`) name it in their record at once instead.
///
/// A class so that a response without one costs a nil pointer, not the struct's room.
final class RequestNaming: Sendable {
    /// nil: the work named no pipeline (the record keeps what the head named, if anything).
    let ref: PipelineRef?
    /// The trigger's mode; nil when the request does not run the pipeline.
    let mode: TriggerMode?
    /// The route `ref` matched (`TriggerDispatcher.route(for:)`); nil when none did.
    let route: RouteTable.ResolvedRoute?
    /// The principal the surface authenticated (an Abacus.AI `apiKey`'s token, a Craft AI access token's
    /// subject, an endpoint token); nil when none did or auth is off.
    let principal: String?
    /// The async operation the work created, read or cancelled (``RequestRecord/operationID``); nil when none.
    let operationID: String?

    init(
        ref: PipelineRef?, mode: TriggerMode?, route: RouteTable.ResolvedRoute?, principal: String? = nil,
        operationID: String? = nil
    ) {
        self.ref = ref
        self.mode = mode
        self.route = route
        self.principal = principal
        self.operationID = operationID
    }

    /// Names only the operation `id` (the record keeps what the head named).
    static func operation(_ id: String?) -> RequestNaming? {
        id.map { RequestNaming(ref: nil, mode: nil, route: nil, operationID: $0) }
    }
}

/// Parsing of the W3C `traceparent` header (W3C Trace Context, Level 1, §3.2).
enum TraceParent {
    /// The trace id of a valid `traceparent` value: version `00` is parsed exactly (55 characters); a higher
    /// version is parsed by its first four fields, as §3.2.4 tells a parser to. An all-zero trace or parent id
    /// is invalid (§3.2.2.3, §3.2.2.4), as is version `ff`.
    static func traceID(of value: String) -> String? {
        let bytes = Array(value.utf8.prefix(56))
        guard bytes.count >= 55 else { return nil }
        func isHex(_ range: Range<Int>) -> Bool {
            range.allSatisfy { index in
                let byte = bytes[index]
                return (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            }
        }
        guard isHex(0..<2), bytes[2] == UInt8(ascii: "-"), isHex(3..<35), bytes[35] == UInt8(ascii: "-"),
            isHex(36..<52), bytes[52] == UInt8(ascii: "-"), isHex(53..<55)
        else { return nil }
        let version = bytes[0..<2]
        if version.elementsEqual("ff".utf8) { return nil }
        if version.elementsEqual("00".utf8), bytes.count != 55 { return nil }
        if bytes.count > 55, bytes[55] != UInt8(ascii: "-") { return nil }
        if bytes[3..<35].allSatisfy({ $0 == UInt8(ascii: "0") })
            || bytes[36..<52].allSatisfy({ $0 == UInt8(ascii: "0") })
        {
            return nil
        }
        return String(decoding: bytes[3..<35], as: UTF8.self)
    }
}

extension FrontendServices {
    /// A new record for a request whose head just arrived; the observers hear of it (in-flight requests).
    /// `peer`: the client's `host:port` (``SocketAddress/hostPort``), made once per connection.
    func openRequest(
        requestID: String, frontend: RequestRecord.Frontend, httpVersion: String, method: String, path: String,
        peer: String?
    ) -> OpenRequest {
        Self.openRequest(
            observers: requestObservers, clock: clock, requestID: requestID, frontend: frontend,
            httpVersion: httpVersion, method: method, path: path, peer: peer)
    }

    /// ``openRequest(requestID:frontend:httpVersion:method:path:peer:)`` given only what it uses: a frontend holds
    /// its services in a class property, and calling a method on that copies the whole struct (two dozen
    /// references retained and released, ~1 000 instructions) where reading two fields does not.
    static func openRequest(
        observers: RequestObservers, clock: @Sendable () -> NIODeadline, requestID: String,
        frontend: RequestRecord.Frontend, httpVersion: String, method: String, path: String, peer: String?
    ) -> OpenRequest {
        observers.requestStarted(frontend)
        // Returned as built: a local changed after it was built was copied out and destroyed (bench/README.md,
        // "Branch hotpath2").
        return OpenRequest(
            record: RequestRecord(
                requestID: requestID,
                frontend: frontend,
                httpVersion: httpVersion,
                method: method,
                path: path,
                operation: RESTPath.unmatched,
                status: 200,
                durationNanoseconds: 0,
                peerAddress: peer
            ),
            start: clock()
        )
    }

    /// A trigger failed on the gateway's or a backend's side (a 5xx: backend failed, unavailable, deadline,
    /// overload, internal): one warning with the request id, pool and endpoint, so that the backend layer's own
    /// warnings (per endpoint and connection, shared by requests) can be tied to the requests they failed.
    /// Client errors (4xx) and application errors the pipeline reported are the client's to see, not logged.
    ///
    /// Held back as the backend layer's endpoint warnings are (README, Backend pools, *Whose fault*): an outage
    /// or an overload fails every request alike, and one warning each undid that rule (review 10, finding 2).
    /// Per pool, endpoint, status and flag (``triggerFailureLog``; the flag, so that a reset and a 500 of one
    /// endpoint within the window are both told of: review 26, L2), the first failure is a warning at once, then
    /// at most one per 10 s carrying `failures_held_back` and `failures_held_back_since` (when the first of them
    /// happened); every one is still logged at debug level, and each request's access line carries its 5xx status,
    /// pool and endpoint. Nothing is logged for ``OpenRequest/none``.
    func logFailure(_ error: GatewayError, of request: borrowing OpenRequest) {
        guard error.code.httpStatus >= 500, !error.code.isApplication, request.isOpen else { return }
        let record = request.record
        var metadata: Logger.Metadata = ["request_id": .string(record.requestID), "error": .string(error.message)]
        // The status the client got, spelled as its access line spells it (review 26, L6): a gRPC call's
        // `grpc_status`, a REST request's HTTP status.
        if record.frontend == .grpc {
            metadata["grpc_status"] = .stringConvertible(error.code.rpcCode)
        } else {
            metadata["error.code"] = .stringConvertible(error.code.httpStatus)
        }
        if let pool = record.pool { metadata["backend.pool"] = .string(pool) }
        if let endpoint = record.endpoint { metadata["backend.endpoint"] = .string(endpoint) }
        let flag = error.upstreamFailure?.rawValue ?? "-"
        let key = "\(record.pool ?? "")/\(record.endpoint ?? "")/\(error.code.httpStatus)/\(flag)"
        // A deadline the caller chose is the caller's to see (its access line says `UT`), not a warning.
        if !error.callerDeadline, let heldBack = Self.triggerFailureLog.admitLine(key) {
            heldBack.annotate(&metadata, countKey: "failures_held_back")
            logger.warning("trigger failed", metadata: metadata)
        } else {
            logger.debug("trigger failed", metadata: metadata)
        }
    }

    /// One `trigger failed` warning per pool, endpoint, status and flag per 10 s (the backend layer's rule, its type).
    static let triggerFailureLog = FailureLogLimiter(interval: .seconds(10))

    /// Ends a request: its duration on the services' clock, then every observer, in order, on this loop. `request`
    /// must be open (``OpenRequest/isOpen``; an assertion in debug builds).
    func finish(_ request: OpenRequest) {
        Self.finish(request, observers: requestObservers, clock: clock)
    }

    /// ``finish(_:)`` given only what it uses (why: the static `openRequest`).
    /// The request is consumed: its record is completed in place, not copied out of it first (issue 11: two
    /// dozen references retained and released per request).
    static func finish(
        _ request: consuming OpenRequest, observers: RequestObservers, clock: @Sendable () -> NIODeadline
    ) {
        assert(request.isOpen, "no open request was finished")
        guard !observers.isEmpty else { return }
        request.record.durationNanoseconds = (clock() - request.start).nanoseconds
        observers.requestFinished(request.record)
    }
}
