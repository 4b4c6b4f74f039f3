import NIOCore
import Observability
import Routing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The request line and headers of one REST request, as either HTTP version delivers them.
struct RESTRequestHead {
    var method: String
    var target: String
    /// Names lowercased (HTTP/2 requires it; HTTP/1.1 names are folded by the frontend).
    var headers: [(name: String, value: String)] {
        didSet { nameLengths = Self.nameLengths(of: headers) }
    }
    /// Bit `n % 64` set for each field name `n` bytes long: ``first(_:)`` and ``all(_:)`` answer a name of a
    /// length no field has (most of the ~ten a trigger asks for) without a scan.
    private var nameLengths: UInt64
    /// `https` on a TLS connection, else `http` (HTTP/2: the request's `:scheme`): for the absolute URLs a
    /// surface hands back to its client (Abacus's `getApiEndpoint`, Craft's file output URLs).
    var scheme = "http"
    /// Which forwarded fields came as sensitive (HTTP/2: HPACK never indexed; the HTTP/2 frontend sets it, an
    /// HTTP/1.1 request has none): carried to the backend call (`TriggerRequest.sensitiveFields`).
    var sensitiveFields = SensitiveFields()

    init(method: String, target: String, headers: [(name: String, value: String)]) {
        self.method = method
        self.target = target
        self.headers = headers
        self.nameLengths = Self.nameLengths(of: headers)
    }

    private static func nameLengths(of headers: [(name: String, value: String)]) -> UInt64 {
        headers.reduce(0) { $0 | 1 << UInt64($1.name.utf8.count & 63) }
    }

    /// Whether some field's name may be `count` bytes long (false: none is).
    @inline(__always)
    private func mayHaveName(ofLength count: Int) -> Bool {
        nameLengths & 1 << UInt64(count & 63) != 0
    }

    /// The scheme the client used to reach the gateway: `https` over TLS here, or when a TLS-terminating proxy
    /// in front says so (`X-Forwarded-Proto: https`); only ever used for URLs handed back to that client.
    var externalScheme: String {
        scheme == "https" || first("x-forwarded-proto")?.lowercased() == "https" ? "https" : "http"
    }

    /// The first field line named `name` (lowercase), or nil.
    ///
    /// Names are compared by length first: a trigger asks for about ten names, most of them absent, over every
    /// field of the head, and `String ==` on two different strings costs ~35 instructions where their UTF-8
    /// counts answer nearly all of them (~2 k instructions per REST call; branch hotpath).
    func first(_ name: String) -> String? {
        let count = name.utf8.count
        guard mayHaveName(ofLength: count) else { return nil }
        return headers.first(where: { $0.name.utf8.count == count && $0.name == name })?.value
    }

    /// Every field line named `name`, in order: for list-valued fields such as `Accept` (RFC 9110 §5.3).
    func all(_ name: String) -> [String] {
        let count = name.utf8.count
        guard mayHaveName(ofLength: count) else { return [] }
        return headers.compactMap { $0.name.utf8.count == count && $0.name == name ? $0.value : nil }
    }

    /// Approximate on-the-wire size of the head: what the header-size cap is measured against.
    /// The request line's part (`<method> <target> HTTP/1.1\r\n`) is counted as `route` counts it alone for a 414.
    var wireSize: Int {
        headers.reduce(method.utf8.count + target.utf8.count + 12) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
    }
}

/// What the frontend should do after seeing a request head.
enum RESTStart {
    /// Answer at once. `closeConnection` when the body that may follow cannot be skipped safely
    /// (e.g. it is over the cap).
    case respond(RESTResponse, closeConnection: Bool)
    /// Read the body into the collector, then use it: a trigger, or a surface's work (`RESTBodyUse`). The route
    /// put both into the frontend's own storage (the `collector` and `use` it was given), not in this case's
    /// payload: binding a payload copies it even out of a consumed value, and the copy's original was destroyed
    /// (~1 400 instructions per REST trigger, bench/README.md "Branch hotpath5").
    case readBody
    /// Answer with what `work` computes off the event loop (operation reads, cancels, lists); any body the
    /// request carries is ignored.
    case run(RESTWork)
}

/// Work whose answer is computed asynchronously, off the event loop.
struct RESTWork: Sendable {
    var requestID: String
    var run: @Sendable () async -> RESTResponse
}

/// A request body's use while the body is read (``RESTStart/readBody``): `.none` between requests, not an Optional
/// (Swift 6.3 destroys and assigns an Optional of a struct this size through the runtime's generic value witnesses,
/// ~280 instructions each time even when nil; branch hotpath4).
enum PendingBodyUse {
    case none
    case use(RESTBodyUse)

    var requestID: String? {
        if case .use(let use) = self { return use.requestID }
        return nil
    }
}

/// What a frontend does with a request body once the collector has all of it.
enum RESTBodyUse {
    /// An Instill trigger: the body's inputs complete the plan (sync, stream or async).
    case trigger(RESTTriggerPlan)
    /// Anything else that reads a body (the Craft AI and Abacus.AI surfaces): the decoded body is handed to
    /// work computed off the event loop, like `RESTStart.run`.
    case work(RESTBodyWork)

    var requestID: String {
        switch self {
        case .trigger(let plan): plan.requestID
        case .work(let work): work.requestID
        }
    }

    /// The answer to a body that failed before the work could see it (over the cap, malformed), in the shape of
    /// the surface the request is for (``RESTErrorFormat``).
    func errorResponse(_ error: GatewayError) -> RESTResponse {
        switch self {
        case .trigger(let plan): .error(error, requestID: plan.requestID)
        case .work(let work): work.errorFormat.response(error, requestID: work.requestID)
        }
    }
}

/// Work that needs the request body: it runs off the event loop once the whole body has arrived within the
/// cap; a body the collector refuses (over the cap, malformed) is answered by the frontend without it.
struct RESTBodyWork: Sendable {
    var requestID: String
    /// The shape of the error the frontend answers when the body itself fails (over the cap, cut short).
    var errorFormat = RESTErrorFormat.instill
    var run: @Sendable (RESTBody) async -> RESTResponse
}

/// A request body as the collector decoded it.
enum RESTBody: Sendable {
    /// The bytes as sent (`RESTBodyCollector.raw`).
    case bytes(ByteBuffer)
    /// A trigger batch (`RESTBodyCollector.json`, `.formLabelledJSON`, `.multipart`).
    case batch(TriggerBatch)
    /// The parts of a multipart body as sent (`RESTBodyCollector.multipartParts`).
    case parts([MultipartPart])
}

/// Everything about a trigger that the head decided; the body adds the inputs.
struct RESTTriggerPlan {
    var ref: PipelineRef
    var mode: TriggerMode
    /// Read from the head like every frontend's (``RequestContext``); its trace already started.
    var context: RequestContext
    /// The route and pool `ref` resolved to when the head arrived (nil: none; the call answers `.notFound`).
    var target: TriggerDispatcher.Target?

    var requestID: String { context.requestID }

    /// The context's trace is started when the head is routed, so the request is made from the plan as it is: a
    /// copy of the context to call the mutating `makeRequest` (which may start it) retained and released its
    /// strings once more per REST trigger (bench/README.md, "Branch hotpath3").
    /// `now`: the frontend's clock when the request is complete (the pool's `request_timeout` counts from it).
    func makeRequest(batch: TriggerBatch, now: NIODeadline) -> TriggerRequest {
        guard let trace = context.trace else {
            var context = self.context
            return context.makeRequest(ref: ref, mode: mode, batch: batch, now: now)
        }
        return context.makeRequest(ref: ref, mode: mode, batch: batch, trace: trace, now: now)
    }

    /// As ``makeRequest(batch:now:)``, for a batch of decoded inputs.
    func makeRequest(inputs: [TriggerInput], now: NIODeadline) -> TriggerRequest {
        makeRequest(batch: TriggerBatch(inputs), now: now)
    }
}

/// Accumulates a request body with the cap enforced as bytes arrive, and decodes it at the end.
///
/// JSON needs the whole document, so it is gathered into one buffer; multipart is decoded as it streams,
/// so file parts are copied once, into their blob.
struct RESTBodyCollector {
    private enum Storage {
        /// No body: ``idle``.
        case idle
        case json(BodyGatherer)
        case multipart(MultipartFormDecoder)
    }

    /// Whether `finishBody` decodes the gathered bytes as a trigger body or hands them over as they are.
    private var raw = false
    /// Whether `finishBody` hands over a multipart body's plain parts rather than a trigger batch.
    private var parts = false

    private var storage: Storage
    private var received = 0
    private let limits: CodecLimits
    /// Labelled `application/x-www-form-urlencoded` but read as JSON (see `formLabelledJSON`).
    private var formLabelled = false
    /// A sync or streamed trigger for an http runner, which gets the client's text where it can: a body already in
    /// the runner's form keeps its batch as that text (`RESTTriggerBody.decodeBatch`), and in any other, large
    /// data URIs with canonical base64 are kept as that text, not decoded (`RESTTriggerBody.decode(json:limits:
    /// keepCanonicalBase64:)`).
    var keepCanonicalBase64 = false
    /// Read before its request is authenticated (Craft AI's `auth/refresh`, Abacus.AI's keyless calls): its bytes
    /// come from ``RequestBufferBudget/unauthenticated``, not the budget authenticated bodies share.
    var unauthenticated = false
    /// Addresses of the gathered JSON body's storage that `HTTP1BodyRelay` already found in base64's standard
    /// alphabet while relaying them (`checkedBase64(gatheredAddress:)`): the end-of-body parse does not check
    /// them again, so the runner's last bytes do not wait for a second pass over the blob (issue 12).
    var checkedAlphabet: Range<UInt>?

    /// Whether this is a JSON trigger body whose large canonical data URIs stay the client's text: the
    /// bodies `HTTP1BodyRelay` may relay as they arrive.
    var keepsCanonicalBase64JSON: Bool {
        guard keepCanonicalBase64, !raw, !parts, !formLabelled, case .json = storage else { return false }
        return true
    }

    /// Whether this is a multipart body decoded into a trigger batch: the bodies whose file part
    /// `HTTP1BodyRelay` may relay as it arrives (`observeFileParts`).
    var decodesMultipartBatch: Bool {
        guard !parts, case .multipart = storage else { return false }
        return true
    }

    /// Tells `observer` about a multipart trigger body's file parts as they stream (`HTTP1BodyRelay`).
    mutating func observeFileParts(_ observer: any MultipartFileObserver) {
        guard !parts, case .multipart(var decoder) = storage else { return }
        storage = .json(BodyGatherer())
        decoder.fileObserver = observer
        storage = .multipart(decoder)
    }

    /// A collector with no body, which takes none: what the HTTP/1.1 frontend holds between requests, so that its
    /// collector is not an Optional. Swift 6.3's IRGen destroys and assigns an Optional of a struct this size (~110
    /// bytes) through the runtime's generic value witnesses: ~280 instructions each time, seven times per request
    /// even while nil (bench/README.md, "Branch hotpath4"); this one's own witness is called directly.
    /// `isIdle`; `append` and `finishBody` must not be called on it (they throw `internalError`).
    static var idle: RESTBodyCollector { RESTBodyCollector(storage: .idle, limits: CodecLimits()) }

    /// Whether this is ``idle`` (no body being read).
    var isIdle: Bool {
        if case .idle = storage { return true }
        return false
    }

    static func json(limits: CodecLimits, expectedLength: Int? = nil) -> RESTBodyCollector {
        RESTBodyCollector(storage: .json(BodyGatherer(expectedLength: expectedLength)), limits: limits)
    }

    /// A body labelled `application/x-www-form-urlencoded` on an Instill trigger route: curl's `-d` sends
    /// JSON with that label, and Instill's REST gateway reads it as JSON. It is accepted when it parses as a
    /// JSON object; anything else with that label is refused with 415, as an unsupported content type.
    static func formLabelledJSON(limits: CodecLimits, expectedLength: Int? = nil) -> RESTBodyCollector {
        var collector = json(limits: limits, expectedLength: expectedLength)
        collector.formLabelled = true
        return collector
    }

    /// Gathers the body as sent, under the same cap (for surfaces that parse their own bodies).
    static func raw(limits: CodecLimits, expectedLength: Int? = nil) -> RESTBodyCollector {
        var collector = json(limits: limits, expectedLength: expectedLength)
        collector.raw = true
        return collector
    }

    static func multipart(boundary: String, limits: CodecLimits, expectedLength: Int? = nil) throws
        -> RESTBodyCollector
    {
        RESTBodyCollector(
            storage: .multipart(
                try MultipartFormDecoder(boundary: boundary, limits: limits, declaredLength: expectedLength)),
            limits: limits)
    }

    /// A multipart body decoded as it streams into its plain parts (file bytes copied once), under the cap:
    /// for surfaces whose fields are not Instill's `variables[i].key`.
    static func multipartParts(boundary: String, limits: CodecLimits, expectedLength: Int? = nil) throws
        -> RESTBodyCollector
    {
        var collector = RESTBodyCollector(
            storage: .multipart(
                try MultipartFormDecoder(
                    boundary: boundary, limits: limits, collectingParts: true, declaredLength: expectedLength)),
            limits: limits
        )
        collector.parts = true
        return collector
    }

    private init(storage: Storage, limits: CodecLimits) {
        self.storage = storage
        self.limits = limits
    }

    /// Takes the next chunk; throws `.payloadTooLarge` as soon as the total passes the cap, so a chunked
    /// body with no declared length is refused while it streams, not after it was buffered. Returns the bytes
    /// received so far (for the request-buffer budget: read here, a frontend reading the collector from its
    /// stored property would copy it whole).
    @discardableResult
    mutating func append(_ chunk: ByteBuffer) throws -> Int {
        received += chunk.readableBytes
        if received > limits.maxBodyBytes {
            throw RESTErrors.bodyTooLarge(size: received, limit: limits.maxBodyBytes, declared: false)
        }
        switch storage {
        case .json(var gatherer):
            // Appended in place through the copy: a gatherer is a handle on its box, which holds the only reference
            // to the bytes (see `BodyGatherer`), so no placeholder (a box allocated per chunk) is swapped in.
            gatherer.append(chunk)
        case .multipart(var decoder):
            storage = .json(BodyGatherer())  // drop the reference so `feed` mutates a unique copy
            try decoder.feed(chunk)
            storage = .multipart(decoder)
        case .idle:
            throw Self.idleUsed
        }
        return received
    }

    /// What ``idle`` answers when used as a collector (a frontend bug, never a client's).
    private static var idleUsed: GatewayError {
        GatewayError(.internalError, "a request body arrived with no collector")
    }

    /// The address of the gathered bytes' storage (JSON and raw bodies), for tests: see `BodyGatherer`.
    var gatheredStorageAddress: UInt? {
        if case .json(let gatherer) = storage { return gatherer.storageAddress }
        return nil
    }

    /// Ends the body: the bytes for a `raw` collector, the trigger batch otherwise (see `finish`).
    mutating func finishBody() throws -> RESTBody {
        if raw, case .json(var gatherer) = storage {
            storage = .json(BodyGatherer())
            return .bytes(gatherer.take())
        }
        if parts, case .multipart(var decoder) = storage {
            storage = .json(BodyGatherer())
            return .parts(try decoder.finishParts())
        }
        return .batch(try finish())
    }

    /// The trigger batch of the whole body: with `keepCanonicalBase64` (a sync or streamed trigger for an http
    /// runner) a canonical JSON body keeps its batch as the runner's text (`RESTTriggerBody.decodeBatch`).
    mutating func finish() throws -> TriggerBatch {
        switch storage {
        case .json(var gatherer) where formLabelled:
            let object: ValueObject
            do {
                object = try JSONValueCodec.decodeObject(inPlace: gatherer.take(), limits: limits, what: "request body")
            } catch {
                throw GatewayError(
                    .unsupportedMediaType,
                    "an application/x-www-form-urlencoded body is accepted only when it is a JSON object; "
                        + "send application/json or multipart/form-data"
                )
            }
            return TriggerBatch(try RESTTriggerBody.inputs(of: object, limits: limits))
        case .json(var gatherer):
            guard gatherer.count > 0 else {
                throw GatewayError(.invalidArgument, "request body is empty: expected a JSON object with \"data\"")
            }
            if keepCanonicalBase64 {
                return try RESTTriggerBody.decodeBatch(
                    json: gatherer.take(), limits: limits, checkedAlphabet: checkedAlphabet)
            }
            return TriggerBatch(try RESTTriggerBody.decode(json: gatherer.take(), limits: limits))
        case .multipart(var decoder):
            storage = .json(BodyGatherer())
            return TriggerBatch(try decoder.finish())
        case .idle:
            throw Self.idleUsed
        }
    }
}

/// REST error wording shared by both HTTP versions.
enum RESTErrors {
    /// The 404 of a path no route serves, saying what the client may have meant: a gRPC call reaches it only over
    /// HTTP/1.1 (over HTTP/2 the gRPC frontend takes it), and a Craft AI SDK call the surface does not serve
    /// (`who_am_i`, `generate_new_endpoint_token`, …) read "no endpoint at POST /api/v1/endpoints/x/…", as if the
    /// deployment were missing.
    static func noEndpoint(_ method: String, _ path: Substring, grpc contentType: GRPCContentType) -> String {
        let method = method.prefix(40)
        if case .grpc = contentType {
            return "no endpoint at \(method) \(path): gRPC needs HTTP/2 (h2c with prior knowledge on this port, or h2 "
                + "over TLS)"
        }
        if RESTErrorFormat(path: path) == .craft {
            return "this gateway does not serve \(method) \(path) of the Craft AI API: it serves pipelines (read and "
                + "run), executions, deployments and their endpoints (README, \"Craft AI\")"
        }
        return "no endpoint at \(method) \(path)"
    }

    /// A gRPC method's path (``GRPCCall/method(path:)``) asked for without gRPC's content type: what to send.
    static func grpcMethod(_ path: Substring) -> String {
        "\(path) is a gRPC method: call it with content-type application/grpc over HTTP/2 (h2c with prior knowledge "
            + "on this port, or h2 over TLS); its REST form is in /openapi.json"
    }

    /// `limit` is `limits.max_body_bytes`, which the message names as the operator sets it (as the decompression
    /// and request-buffer refusals name theirs).
    static func bodyTooLarge(size: Int, limit: Int, declared: Bool) -> GatewayError {
        let what = declared ? "declared request body of \(size) bytes" : "request body of at least \(size) bytes"
        return GatewayError(.payloadTooLarge, "\(what) exceeds the limit of \(limit) bytes (limits.max_body_bytes)")
    }
}

extension RESTRequestHead {
    /// The first coding of `content-encoding` other than `identity` (RFC 9110 §8.4: a comma-separated list,
    /// case-insensitive), nil when there is none: request bodies are read as sent, never decoded.
    var unsupportedContentCoding: String? {
        for value in all("content-encoding") {
            for coding in value.split(separator: ",") {
                // A coding is a token (no inner whitespace): dropping all of it drops the list's OWS.
                let name = String(coding.filter { $0 != " " && $0 != "\t" }).lowercased()
                if !name.isEmpty, name != "identity" { return name }
            }
        }
        return nil
    }

    /// Decides what a request head asks for: an immediate answer (health, errors) or a body to read.
    /// HEAD is routed as GET here; `start` then drops the body of the answer. What the head names (the
    /// operation; for a trigger the principal, pipeline, route, pool, mode and trace) goes into `record`;
    /// `arrival` is when the head arrived (a trigger's deadline counts from it). `collector` and `use`: where a
    /// head that reads a body (``RESTStart/readBody``) puts its collector and the body's use (left alone otherwise).
    func route(
        services: FrontendServices, requestID: String, record: inout RequestRecord, arrival: NIODeadline,
        collector: inout RESTBodyCollector, use: inout PendingBodyUse
    ) -> RESTStart {
        // Each surface's errors in its own shape, those of the frontend's checks below included (decided only
        // when there is an error: the path's prefixes are not compared on the way to a trigger).
        func fail(_ error: GatewayError, close: Bool = false) -> RESTStart {
            .respond(RESTErrorFormat(path: target).response(error, requestID: requestID), closeConnection: close)
        }
        if wireSize > services.maxHeaderBytes {
            // A request line past the limit on its own: its target is longer than the gateway parses, 414 (RFC
            // 9112 §3, RFC 9110 §15.5.15), as nginx answers it; the status line says so, the body
            // RESOURCE_EXHAUSTED as for 431 (protocol review 58, L1: it was 431, which names the header fields).
            // Inside the head's check, so a request within the limit pays nothing for it.
            let requestLineSize = method.utf8.count + target.utf8.count + 12
            if requestLineSize > services.maxHeaderBytes {
                var response = RESTErrorFormat(path: target).response(
                    GatewayError(
                        .headersTooLarge,
                        "request target too long: the request line of \(requestLineSize) bytes exceeds the header "
                            + "limit of \(services.maxHeaderBytes) bytes (limits.max_header_bytes)"),
                    requestID: requestID)
                response.status = 414
                return .respond(response, closeConnection: true)
            }
            return fail(
                GatewayError(
                    .headersTooLarge,
                    "request headers of \(wireSize) bytes exceed the limit of \(services.maxHeaderBytes) bytes"
                ),
                close: true
            )
        }
        let grpcContentType = GRPCContentType(header: first("content-type"))
        /// The answer to an unknown path, for `/metrics` where it is not served (``FrontendServices/servesMetrics``).
        func metricsHidden() -> RESTStart {
            fail(GatewayError(.notFound, RESTErrors.noEndpoint(method, pathOnly, grpc: grpcContentType)))
        }
        if case .lookalike(let type) = grpcContentType {
            return fail(
                GatewayError(
                    .unsupportedMediaType,
                    "content type \"\(type)\" is not served: gRPC needs application/grpc or application/grpc+proto"
                )
            )
        }
        if let field = RequestFieldRules.repeatedSingleton(headers) { return fail(RequestFieldRules.repeated(field)) }
        // The parsed route moved out of its optional by a switch: `guard let` on a stored optional copied the
        // route and destroyed the optional after, each through the runtime's generic value witnesses (`RESTPath`
        // has a dozen payload shapes: ~390 instructions per REST call; issue 11).
        let path: RESTPath
        do {
            switch try RESTPath.parse(target) {
            case .some(let found): path = found
            case .none:
                // A gRPC method's path with another content type (REST's JSON, none): gRPC PROTOCOL-HTTP2.md has a
                // server answer 415 when the type is not application/grpc, so that an HTTP client does not read
                // a gRPC answer's 200 as success; a 404 would read as UNIMPLEMENTED to a gRPC-aware one.
                if case .other = grpcContentType, GRPCCall.method(path: String(pathOnly)) != nil {
                    return fail(GatewayError(.unsupportedMediaType, RESTErrors.grpcMethod(pathOnly)))
                }
                // A gRPC call over HTTP/1.1 (a proxy that downgrades it: nginx's `proxy_pass` for `grpc_pass`): 505,
                // the version refused (RFC 9110 §15.6.6), not a cacheable 404 that a gRPC client reads as
                // UNIMPLEMENTED, as if the method did not exist (protocol review 58, L4).
                if case .grpc = grpcContentType, GRPCCall.method(path: String(pathOnly)) != nil {
                    var response = RESTErrorFormat(path: target).response(
                        GatewayError(
                            .unimplemented,
                            "\(pathOnly) is a gRPC method: gRPC needs HTTP/2 (h2c with prior knowledge on this port, "
                                + "or h2 over TLS)"),
                        requestID: requestID)
                    response.status = 505  // no code's status: the body says UNIMPLEMENTED, as the decoder's 505
                    return .respond(response, closeConnection: false)
                }
                return fail(GatewayError(.notFound, RESTErrors.noEndpoint(method, pathOnly, grpc: grpcContentType)))
            }
        } catch {
            return fail(error)
        }
        record.operation = path.operationID(method: method, target: target)
        guard path.allows(method) || path.answersEveryMethod else {
            // A hidden /metrics is an unknown path for every method: a 405 would say it is there.
            if case .metrics = path, !services.servesMetrics { return metricsHidden() }
            let allow = path.allowedMethods.joined(separator: ", ")
            var response = RESTErrorFormat(path: target).response(
                // An unregistered method too (RFC 9110 §9.1 would have 501): 405 with Allow is what OpenAPI tooling
                // (schemathesis) expects of any method a path does not list. Its name cut to 40 bytes in the message
                // (protocol review 58, L7: a 1000-byte method was echoed whole).
                GatewayError(.methodNotAllowed, "\(method.prefix(40)) is not allowed on \(pathOnly); use \(allow)"),
                requestID: requestID
            )
            // RFC 9110 §15.5.6: the methods this path takes (a surface's format may have named its own).
            response.headers.removeAll { $0.name == "allow" }
            response.headers.append(("allow", allow))
            return .respond(response, closeConnection: false)
        }
        if let coding = unsupportedContentCoding {
            // RFC 9110 §8.4.1 / §15.5.16: a body in a coding we do not decode is refused, saying which we take.
            var response = RESTErrorFormat(path: target).response(
                GatewayError(
                    .unsupportedMediaType,
                    "content coding \"\(coding)\" is not supported: send the body uncompressed (identity)"),
                requestID: requestID
            )
            response.headers.append(("accept-encoding", "identity"))
            return .respond(response, closeConnection: false)
        }
        switch path {
        case .readiness:
            return .respond(readinessResponse(health: services.health, requestID: requestID), closeConnection: false)
        case .liveness:
            return .respond(
                .json(
                    status: 200,
                    body: ByteBuffer(string: #"{"health_check_response":{"status":"SERVING_STATUS_SERVING"}}"#),
                    requestID: requestID
                ),
                closeConnection: false
            )
        case .metrics:
            // `admin.metrics_on_serving_port: false`: the metrics are the admin listener's alone (security review
            // 60, I4), and this port answers as for a path it does not have.
            guard services.servesMetrics else { return metricsHidden() }
            // The Prometheus text exposition of the gateway's registry (GatewayMetrics).
            var response = RESTResponse.text(status: 200, "", contentType: GatewayMetrics.contentType)
            response.body = ByteBuffer(bytes: services.metrics?.scrape() ?? [])
            // Like every other answer (review 9 #15): a scrape that went wrong is found in the log by its id.
            response.headers.append(("request-id", requestID))
            return .respond(response, closeConnection: false)
        case .openAPI:
            return .respond(.openAPIDocument(requestID: requestID), closeConnection: false)
        case .operation, .cancelOperation, .listOperations:
            return operationStart(path, services: services, requestID: requestID, principal: &record.principal)
        case .abacus(let action):
            // Its runs travel with the gateway's trace like any trigger's (the client's as parent, or a new one).
            var context = RequestContext(
                requestID: requestID, start: arrival, requestTimeout: services.requestTimeout, field: { first($0) })
            let trace = context.startTrace()
            record.traceID = trace.traceID
            return abacusStart(
                action, services: services, requestID: requestID, trace: trace, collector: &collector, use: &use)
        case .listSchedules, .scheduleAction:
            return scheduleStart(path, services: services, requestID: requestID)
        case .craft(let route):
            var context = RequestContext(
                requestID: requestID, start: arrival, requestTimeout: services.requestTimeout, field: { first($0) })
            let trace = context.startTrace()
            record.traceID = trace.traceID
            if let craft = services.craft, let named = route.pipeline(of: craft) {
                record.name(named.ref, mode: named.mode, route: services.dispatcher.route(for: named.ref))
            }
            return craftStart(
                route, services: services, requestID: requestID, trace: trace, collector: &collector, use: &use)
        case .pipeline(let ref):
            record.name(ref, mode: nil, route: services.dispatcher.route(for: ref))
            return pipelineStart(ref, services: services, requestID: requestID)
        case .pipelineReleases(let ref):
            record.name(ref, mode: nil, route: services.dispatcher.route(for: ref))
            return pipelineReleasesStart(ref, services: services, requestID: requestID)
        case .pipelines(let namespace):
            record.namespace = namespace
            return pipelinesStart(namespace, services: services, requestID: requestID)
        case .pipelineRuns(let ref):
            record.name(ref, mode: nil, route: services.dispatcher.route(for: ref))
            return pipelineRunsStart(ref, services: services, requestID: requestID, principal: &record.principal)
        case .trigger(let ref, let kind):
            let principal: String?
            record.namespace = ref.namespace
            record.pipeline = ref.pipeline
            // `{ first($0) }`, not the method `first`: a method reference captured a copy of the whole head.
            // An optional, taken out whole at its last use (`take()`): passed as a variable, the plan got a copy
            // of it (its strings retained and released once more per REST trigger; issue 11), and this compiler
            // refuses `consume` of a variable whose fields were assigned.
            var context: RequestContext? = RequestContext(
                requestID: requestID, start: arrival, requestTimeout: services.requestTimeout, field: { first($0) })
            record.traceID = context!.startTrace().traceID
            if !sensitiveFields.isEmpty { context!.markSensitive(sensitiveFields, sentRequestID: first("request-id")) }
            do {
                principal = try services.authenticator.authenticate(authorization: first("authorization"))
            } catch {
                return fail(gatewayError(from: error))
            }
            record.principal = principal
            context!.principal = principal
            // Instill's requester (`Instill-Requester-Uid`, as the gRPC metadata): refused unless the principal
            // may act for it.
            if let requester = first("instill-requester-uid"), !requester.isEmpty {
                do {
                    context!.requesterUID = try services.namespaces.checkRequester(
                        uid: requester, principal: principal)
                } catch {
                    return fail(gatewayError(from: error))
                }
            }
            let mode: TriggerMode
            switch kind {
            case .async: mode = .async
            case .stream:
                // `:trigger-stream` only speaks SSE: a client that refuses it (q=0, or only other types) gets
                // 406 rather than a body it said it cannot take (RFC 9110 §12.5.1, §15.5.7). No Accept is "*/*".
                let accept = AcceptHeader(lines: all("accept"))
                guard accept.accepts("text/event-stream") else {
                    return fail(
                        GatewayError(
                            .notAcceptable,
                            "this endpoint answers text/event-stream, which the Accept header excludes"
                        )
                    )
                }
                mode = .stream
            case .trigger:
                guard let negotiated = Self.negotiateTriggerMode(AcceptHeader(lines: all("accept"))) else {
                    return fail(
                        GatewayError(
                            .notAcceptable,
                            "none of the Accept header's media types is served here; accept application/json or "
                                + "text/event-stream"
                        )
                    )
                }
                mode = negotiated
            }
            // Resolved once: the record's route, the pool's timeout and the call all use this one.
            let target = services.dispatcher.target(for: ref)
            record.name(ref, mode: mode, route: target?.route)
            context!.bound(byPoolTimeout: target?.requestTimeout)
            // Pattern matched (see `HTTP1FrontendHandler.receivedEnd`): `==` on another module's enum is a witness call.
            if case .async = mode, services.operations == nil {
                return fail(GatewayError(.unimplemented, "async triggers are not available on this gateway"))
            }
            if case .async = mode, services.health.status(.async) != .serving {
                return fail(services.health.asyncRefusal)
            }
            let declaredLength = first("content-length").flatMap(Int.init)
            if let declared = declaredLength, declared > services.limits.maxBodyBytes {
                return fail(
                    RESTErrors.bodyTooLarge(size: declared, limit: services.limits.maxBodyBytes, declared: true),
                    close: true)
            }
            let contentType = first("content-type").map { MediaType.parse($0) }
            switch contentType?.type {
            case nil, "application/json":
                collector = .json(limits: services.limits, expectedLength: declaredLength)
            case "application/x-www-form-urlencoded":
                collector = .formLabelledJSON(limits: services.limits, expectedLength: declaredLength)
            case "multipart/form-data":
                guard let boundary = contentType?.parameters["boundary"], !boundary.isEmpty else {
                    return fail(GatewayError(.invalidArgument, "multipart/form-data without a boundary parameter"))
                }
                do {
                    collector = try .multipart(
                        boundary: boundary, limits: services.limits, expectedLength: declaredLength)
                } catch {
                    return fail(gatewayError(from: error))
                }
            case let other?:
                if other.hasSuffix("+json") {
                    collector = .json(limits: services.limits, expectedLength: declaredLength)
                } else {
                    return fail(
                        GatewayError(
                            .unsupportedMediaType,
                            "content type \"\(other)\" is not supported; send application/json or multipart/form-data"
                        )
                    )
                }
            }
            // An async trigger's blobs go to the operation store as bytes: decoding them now, in place, is
            // cheaper than decoding them into a new buffer there.
            collector.keepCanonicalBase64 =
                switch mode {
                case .async: false
                case .sync, .stream: target?.sendsBlobsAsBase64 == true
                }
            use = .use(.trigger(RESTTriggerPlan(ref: ref, mode: mode, context: context.take()!, target: target)))
            return .readBody
        }
    }

    var pathOnly: Substring { RESTPath.pathPart(of: target) }
}
