package import AsyncDispatch
package import NIOCore
import OperationStore
package import Routing
package import TriggerModel
package import WireCodecs

/// One Abacus call as the frontend hands it over: which action (`/api/v0/<action>`), its parameters' sources,
/// and what the transport knows (API key, the base URL the client used, request id, trace context).
package struct AbacusRequest: Sendable {
    package var action: String
    /// `GET`, `HEAD` or `POST`.
    package var method: String
    package var query: @Sendable (String) -> String?
    /// The request body (POST), or nil.
    package var body: ByteBuffer?
    /// The `apiKey` header.
    package var apiKey: String?
    /// `http(s)://<Host>`: the gateway as this client reached it; nil when the request named no host.
    package var baseURL: String?
    package var requestID: String
    package var traceParent: String?
    package var traceState: String?
    /// `Idempotency-Key`: the same key and mappings give the same pipeline version.
    package var idempotencyKey: String?

    package init(
        action: String,
        method: String,
        query: @escaping @Sendable (String) -> String?,
        body: ByteBuffer?,
        apiKey: String?,
        baseURL: String?,
        requestID: String,
        traceParent: String? = nil,
        traceState: String? = nil,
        idempotencyKey: String? = nil
    ) {
        self.action = action
        self.method = method
        self.query = query
        self.body = body
        self.apiKey = apiKey
        self.baseURL = baseURL
        self.requestID = requestID
        self.traceParent = traceParent
        self.traceState = traceState
        self.idempotencyKey = idempotencyKey
    }
}

/// What the surface needs from the gateway, taken from the configuration generation the request started in.
package struct AbacusServices: Sendable {
    /// The namespace `pipelineId`s name (`abacus.namespace`).
    package var namespace: String
    package var authenticator: TokenAuthenticator
    package var limits: CodecLimits
    /// The async store front; nil when async mode is off (runs are refused).
    package var operations: AsyncOperations?
    /// Why no run can be accepted right now (the store is down), or nil.
    package var runsUnavailable: GatewayError?
    /// Throws `GatewayError(.notFound)` when the ref names no pipeline: no route serves it, or the runner of
    /// its pool has no such pipeline. For a read (`forRun` false) through `TriggerDispatcher.pipelineDescription`
    /// (the runner's `Describe`, as Instill's `GetNamespacePipeline` and the Craft AI surface ask it); for
    /// `runPipeline`, as an async accept checks its target (`TriggerDispatcher.checkAsyncTarget`: the runner is
    /// waited for at most its pool's `connect_timeout`). Other errors mean the runner could not be asked (down,
    /// slow, broken).
    package var checkPipeline: @Sendable (_ ref: PipelineRef, _ forRun: Bool) async throws -> Void
    /// What a client may be told about an error that is neither the surface's nor a `GatewayError` (the
    /// frontend's rule: log it with the request id, answer "internal error").
    package var gatewayError: @Sendable (any Error) -> GatewayError

    package init(
        namespace: String,
        authenticator: TokenAuthenticator,
        limits: CodecLimits,
        operations: AsyncOperations?,
        runsUnavailable: GatewayError?,
        checkPipeline: @escaping @Sendable (_ ref: PipelineRef, _ forRun: Bool) async throws -> Void,
        gatewayError: @escaping @Sendable (any Error) -> GatewayError
    ) {
        self.namespace = namespace
        self.authenticator = authenticator
        self.limits = limits
        self.operations = operations
        self.runsUnavailable = runsUnavailable
        self.checkPipeline = checkPipeline
        self.gatewayError = gatewayError
    }
}

/// A complete answer: status, the envelope, and headers beyond the JSON content type.
package struct AbacusResponse: Sendable {
    package var status: Int
    package var body: ByteBuffer
    package var headers: [(name: String, value: String)]
    /// The pipeline the call named (`pipelineId` in the surface's namespace), once its parameters named one,
    /// whether or not the call then succeeded: for the request's access-log line and metrics labels.
    package var pipeline: PipelineRef? = nil
    /// `.async` when the call runs the pipeline (`runPipeline`: a pipeline version is an async operation);
    /// nil for the reads.
    package var mode: TriggerMode? = nil
    /// The principal the call's `apiKey` authenticated, once it did (whether or not the call then succeeded):
    /// for the request's access-log line, as the Instill paths record theirs. nil with auth off.
    package var principal: String? = nil
    /// The pipeline version (an async operation) the call created (`runPipeline`) or asked for, for the request's
    /// access-log line (`operation.id`); nil when none.
    package var operationID: String? = nil
}

/// The Abacus.AI `runPipeline` surface (API.md §4b; CLIENTS.md §4): the calls the published `abacusai` client
/// (1.4.x) makes to construct itself, run a pipeline and follow the run, answered from the gateway's routes
/// and its durable async operations.
///
/// A pipeline is `<abacus.namespace>/<pipelineId>` in the routing table; a pipeline version is one async
/// operation of it (the same store and ids as `/v1beta/operations`). Parameters come from the query string or
/// a JSON body (`AbacusParameters`). The client uses GET for some reads and POST for the others and for
/// `runPipeline`; the reads take either method (so curl users need not know which), while `runPipeline`,
/// which stores a run, is POST only: GET and HEAD are safe methods (RFC 9110 §9.2.1) that a prefetch or a
/// crawler may send, and must not start pipelines.
package enum AbacusAPI {
    /// The API version `GET /api/v0/version` reports: the client line this surface was verified against. The
    /// client only warns when the server's version is newer than its own.
    package static let apiVersion = "1.4.119"

    /// The actions served, by their path segment.
    package enum Action: String, CaseIterable, Sendable {
        case getApiEndpoint
        case version
        case runPipeline
        case describePipelineVersion
        case describePipelineStepVersion
        case listPipelineVersions
        case listPipelineVersionLogs
        case getStepVersionLogs
        case describePipeline

        /// Only reads, so GET and HEAD may ask for them as well as POST.
        var isSafe: Bool { self != .runPipeline }

        /// The two calls the client makes while it is constructed, before any call of the user's: they name
        /// only the gateway's address and API version, so they need no key (and a wrong key fails fast on the
        /// first real call instead of costing the constructor's 15 s of retries).
        var needsKey: Bool { self != .getApiEndpoint && self != .version }
    }

    /// Answers one call; never throws: every failure is an envelope with `success: false`.
    package static func handle(_ request: AbacusRequest, services: AbacusServices) async -> AbacusResponse {
        var named: Named?
        var principal: String?
        var operationID: String?
        var response: AbacusResponse
        do {
            let result = try await result(
                of: request, services: services, named: &named, principal: &principal, operationID: &operationID)
            response = AbacusResponse(status: 200, body: AbacusEnvelope.success(result), headers: [])
        } catch {
            let abacusError = error as? AbacusError ?? AbacusError(services.gatewayError(error))
            response = failure(abacusError, requestID: request.requestID)
        }
        response.pipeline = named?.ref
        response.mode = named?.mode
        response.principal = principal
        response.operationID = operationID
        return response
    }

    /// The pipeline a call named, and its mode when the call runs it (`AbacusResponse.pipeline`, `.mode`).
    private struct Named {
        var ref: PipelineRef
        var mode: TriggerMode?
    }

    /// The envelope of `error`, with the headers its status calls for.
    package static func failure(_ error: AbacusError, requestID: String) -> AbacusResponse {
        var headers: [(name: String, value: String)] = []
        if error.httpStatus == 401 {
            // RFC 9110 §11.6.1: a 401 carries a challenge; the credential this surface takes is the apiKey header.
            headers.append(("www-authenticate", "apiKey"))
        }
        if error.httpStatus == 405 {
            headers.append(("allow", "POST"))  // RFC 9110 §15.5.6; only runPipeline refuses a method
        }
        if error.httpStatus == 503 || error.httpStatus == 429 {
            headers.append(("retry-after", "1"))  // RFC 9110 §10.2.3, as on the other surfaces
        }
        return AbacusResponse(
            status: error.httpStatus,
            body: AbacusEnvelope.failure(error, requestID: requestID),
            headers: headers
        )
    }

    /// Whether a POST's body may be read (``admission(_:services:)``).
    package enum BodyAdmission {
        /// Refused before its parameters are read: answer this, and read nothing.
        case refused(AbacusResponse)
        /// An action that takes a key, and the key is valid: read the body under `limits.max_body_bytes`.
        case keyed
        /// An action that takes no key (`getApiEndpoint`, `version`): its parameters are a few names, so its body
        /// is read under ``keylessBodyBytes`` only.
        case keyless
    }

    /// The body cap of a call that needs no `apiKey`: anyone may send it, so it gets no share of the request
    /// buffer budget worth holding.
    package static let keylessBodyBytes = 16 << 10

    /// What `handle` would refuse `request` for before it reads any parameter: an action this gateway does not
    /// serve, a method the action does not take, a missing or unknown `apiKey`. The frontend asks at the head,
    /// before it reads a POST's body, so that no one without a key has a body gathered under the process-wide
    /// `limits.max_buffered_request_bytes` (security review 60, H1: 34 keyless 32 MiB bodies held 1 GiB and
    /// every keyed trigger was 503).
    package static func admission(_ request: AbacusRequest, services: AbacusServices) -> BodyAdmission {
        do {
            return try admit(request, services: services).action.needsKey ? .keyed : .keyless
        } catch {
            return .refused(failure(error, requestID: request.requestID))
        }
    }

    /// The action `request` names and the principal of its `apiKey` (nil for an action that takes none),
    /// checked in the order callers see: the action, the method, the key.
    private static func admit(
        _ request: AbacusRequest, services: AbacusServices
    ) throws(AbacusError) -> (action: Action, principal: String?) {
        guard let action = Action(rawValue: request.action) else {
            if request.action == "resetPipelineVersion" {
                // Abacus reruns chosen steps of a version in place; a gateway run is one runner call of fixed
                // inputs, stored once, so there is no step to rerun. A new run does what a reset would.
                throw AbacusError(
                    .generic404,
                    "this gateway does not serve resetPipelineVersion: a pipeline version is one run that cannot "
                        + "be rerun in place; run the pipeline again (run_pipeline with the same "
                        + "pipelineVariableMappings, which describe_pipeline_version shows) for a new version",
                    httpStatus: 404
                )
            }
            let served = Action.allCases.map(\.rawValue).joined(separator: ", ")
            throw AbacusError(
                .generic404,
                "this gateway does not serve the Abacus.AI API method \"\(request.action)\"; it serves: \(served)",
                httpStatus: 404
            )
        }
        guard action.isSafe || request.method == "POST" else {
            throw AbacusError(
                .methodNotAllowed,
                "\(action.rawValue) takes POST, not \(request.method)",
                httpStatus: 405
            )
        }
        return (action, action.needsKey ? try authenticate(request.apiKey, services.authenticator) : nil)
    }

    private static func result(
        of request: AbacusRequest, services: AbacusServices, named: inout Named?, principal: inout String?,
        operationID: inout String?
    ) async throws -> Value {
        let action: Action
        (action, principal) = try admit(request, services: services)
        let parameters = try AbacusParameters(body: request.body, query: request.query, limits: services.limits)
        switch action {
        case .getApiEndpoint:
            guard let base = request.baseURL else {
                throw AbacusError(
                    .invalidRequest,
                    "the request has no Host header (or an empty one), so the gateway cannot name its own URL",
                    httpStatus: 400
                )
            }
            return .object([
                "apiEndpoint": .string(base), "predictEndpoint": .string(base), "proxyEndpoint": .string(base),
            ])
        case .version:
            return .string(apiVersion)
        case .runPipeline:
            let pipelineID = try parameters.requiredString("pipelineId")
            named = Named(ref: pipelineRef(pipelineID, services), mode: .async)
            let operation = try await runPipeline(
                pipelineID, parameters, request: request, principal: principal, services: services)
            operationID = operation.id
            return .object(AbacusPipelineVersion.render(operation))
        case .describePipelineVersion:
            let id = try parameters.requiredString("pipelineVersion")
            operationID = id
            let operation = try await version(id, principal, services)
            return .object(AbacusPipelineVersion.render(operation))
        case .listPipelineVersionLogs:
            let id = try parameters.requiredString("pipelineVersion")
            operationID = id
            let operation = try await version(id, principal, services)
            return .object(AbacusPipelineVersion.logs(operation))
        case .describePipelineStepVersion, .getStepVersionLogs:
            let id = try parameters.requiredString("pipelineStepVersion")
            let stepNotFound = AbacusError.dataNotFound("no pipeline step version \"\(id)\"")
            guard let reference = AbacusPipelineVersion.stepReference(id) else { throw stepNotFound }
            operationID = reference.id
            let operation = try await version(reference.id, principal, services)
            guard reference.item < AbacusPipelineVersion.stepCount(operation) else { throw stepNotFound }
            // `get_step_version_logs` (also a `PipelineStepVersion`'s own method): that step's entry of
            // `listPipelineVersionLogs`.
            return .object(
                action == .getStepVersionLogs
                    ? AbacusPipelineVersion.stepLogs(operation, item: reference.item)
                    : AbacusPipelineVersion.step(operation, item: reference.item))
        case .listPipelineVersions:
            let pipelineID = try parameters.requiredString("pipelineId")
            named = Named(ref: pipelineRef(pipelineID, services))
            let ref = try await resolve(pipelineID, services, forRun: false)
            let limit = try parameters.integer("limit", in: listLimits) ?? 0
            let operations = try await list(ref, limit: limit, principal: principal, services)
            return .list(operations.map { .object(AbacusPipelineVersion.render($0)) })
        case .describePipeline:
            let pipelineID = try parameters.requiredString("pipelineId")
            named = Named(ref: pipelineRef(pipelineID, services))
            let ref = try await resolve(pipelineID, services, forRun: false)
            let latest = try await list(ref, limit: 0, principal: principal, services).first
            return .object(AbacusPipelineVersion.pipeline(id: pipelineID, latest: latest))
        }
    }

    /// Stores a pipeline version (a queued operation) for `pipelineId` with the decoded mappings as its one
    /// input, and answers it as PENDING. The pipeline is resolved first: an unknown one (`resolve`) is refused
    /// with `DataNotFoundError` before anything is stored, as are bad mappings.
    private static func runPipeline(
        _ pipelineID: String,
        _ parameters: AbacusParameters,
        request: AbacusRequest,
        principal: String?,
        services: AbacusServices
    ) async throws -> Operation {
        let ref = try await resolve(pipelineID, services, forRun: true)
        let variables = try AbacusVariableMappings.decode(
            try parameters.value("pipelineVariableMappings"),
            limits: services.limits
        )
        guard let operations = services.operations else {
            throw GatewayError(.unimplemented, "pipeline runs need async mode, which is off on this gateway")
        }
        if let unavailable = services.runsUnavailable { throw unavailable }
        let trigger = TriggerRequest(
            ref: ref,
            mode: .async,
            inputs: [TriggerInput(variables: variables)],
            principal: principal,
            requestID: request.requestID,
            traceParent: request.traceParent,
            traceState: request.traceState,
            idempotencyKey: request.idempotencyKey
        )
        return try await operations.submit(trigger)
    }

    /// The ref `pipelineId` names in the surface's namespace.
    private static func pipelineRef(_ pipelineID: String, _ services: AbacusServices) -> PipelineRef {
        PipelineRef(namespace: services.namespace, pipeline: pipelineID)
    }

    /// The ref `pipelineId` names, checked to exist (`AbacusServices.checkPipeline`): `DataNotFoundError` 404
    /// when no route serves it or its runner has no such pipeline, so a mistyped id fails at once instead of
    /// becoming a stored run that fails later.
    ///
    /// A runner that cannot be asked right now (down, slow: any error but NOT_FOUND) refuses nothing: a run is
    /// then stored as any async trigger is while its backend is away, retried by the dispatcher, and fails
    /// with the runner's own answer if the pipeline turns out not to exist.
    private static func resolve(_ pipelineID: String, _ services: AbacusServices, forRun: Bool) async throws
        -> PipelineRef
    {
        let ref = pipelineRef(pipelineID, services)
        do {
            try await services.checkPipeline(ref, forRun)
        } catch let error as GatewayError where error.code == .notFound {
            throw AbacusError.dataNotFound("no pipeline \"\(pipelineID)\": \(error.message)")
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Not known not to exist: see above.
        }
        return ref
    }

    /// The operation `id`, when it is a run of this surface's namespace that `principal` may see.
    private static func version(
        _ id: String,
        _ principal: String?,
        _ services: AbacusServices
    ) async throws -> Operation {
        guard let operations = services.operations else { throw notFound(id) }
        let operation: Operation
        do {
            operation = try await operations.get(id: id)
        } catch let error as GatewayError where error.code == .notFound {
            throw notFound(id)
        }
        guard operation.ref.namespace == services.namespace, operation.isVisible(to: principal) else {
            throw notFound(id)
        }
        return operation
    }

    private static func notFound(_ id: String) -> AbacusError {
        .dataNotFound("no pipeline version \"\(id)\"")
    }

    /// The page sizes `listPipelineVersions` takes as `limit`: 1 to the store's largest page
    /// (``OperationPaging/maximumPageSize``; abacusai sends 200 unless told otherwise). Without a `limit` the
    /// store's default page is read; one outside the range is `InvalidParameterError` (abacusai raises
    /// `InvalidParameterError(400): limit must be an integer from 1 to 1000 (it is 0)`, CLIENTS.md §4.2), rather
    /// than `limit=0` quietly answered with a default page or a huge one quietly cut.
    static let listLimits = 1...OperationPaging.maximumPageSize

    /// The newest runs of `ref` that `principal` may see, newest first; `limit` 0 is the store's default page.
    private static func list(
        _ ref: PipelineRef,
        limit: Int,
        principal: String?,
        _ services: AbacusServices
    ) async throws -> [Operation] {
        guard let operations = services.operations else { return [] }
        let filter = OperationFilter(pipeline: OperationFilter.pipelineKey(ref))
        let page = try await operations.list(filter: filter, pageSize: limit, pageToken: nil)
        return page.operations.filter { $0.isVisible(to: principal) }
    }

    /// The principal the `apiKey` names; every key passes (nil) when no tokens are configured.
    static func authenticate(_ apiKey: String?, _ authenticator: TokenAuthenticator) throws(AbacusError) -> String? {
        do {
            return try authenticator.authenticate(token: apiKey)
        } catch {
            let message = (apiKey ?? "").isEmpty ? "missing apiKey header" : "invalid API key"
            throw AbacusError(.permissionDenied, message, httpStatus: 401)
        }
    }
}
