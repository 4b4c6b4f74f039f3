import AsyncDispatch
import CraftSurface
import FoundationEssentials
import GatewayConfig
import Logging
import NIOCore
import OperationStore
import Routing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The Craft AI surface over REST (CLIENTS.md §3 is the contract: what craft-ai-sdk 0.74.7 sends and reads).
///
/// - `/api/v1/auth/refresh` trades an SDK token for an access token (a JWT); every other `/api/v1` call
///   presents it as `Bearer` and it is verified each time.
/// - An *execution* is an async operation (same store, also under `/v1beta/operations`); its id is the
///   operation id. Reads of its outputs are a bounded long-poll that answers 307 with `Location` when the
///   wait ends first (the SDK re-sends at once, or `requests` follows the redirect).
/// - Errors are JSON with `message` (and `name`, `request_id`), the status from the error's code.
extension RESTRequestHead {
    /// `trace`: the request's trace context (``RequestContext/startTrace()``), which its executions carry.
    /// `collector`, `use`: where a body's reader goes (``RESTStart/readBody``).
    func craftStart(
        _ route: CraftRoute, services: FrontendServices, requestID: String, trace: TraceContext,
        collector: inout RESTBodyCollector, use: inout PendingBodyUse
    ) -> RESTStart {
        guard let craft = services.craft else {
            return .respond(
                CraftAnswer.error(GatewayError(.notFound, "the Craft AI surface is not enabled"), requestID: requestID),
                closeConnection: false
            )
        }
        let exchange = CraftExchange(
            craft: craft,
            services: services,
            requestID: requestID,
            method: method,
            target: target,
            authorization: first("authorization"),
            host: first("host") ?? first(":authority"),
            scheme: externalScheme,
            trace: trace
        )
        guard route.readsBody(method: method) else {
            return .run(RESTWork(requestID: requestID) { await exchange.answer(route, body: nil) })
        }
        func fail(_ error: GatewayError, close: Bool = false) -> RESTStart {
            .respond(CraftAnswer.error(error, requestID: requestID), closeConnection: close)
        }
        // The credential is checked at the head, before the body is read: bodies of up to 32 MiB were gathered
        // for anyone, and keyless ones filled `limits.max_buffered_request_bytes` (security review 60, H1). A
        // refusal is answered at once, as the Instill trigger's is, and a body that follows is discarded, not
        // gathered (one held back for `100 Continue` closes the connection instead). `refresh` carries its
        // credential (the SDK token) in its body, a few names: its body is capped small instead.
        var limits = services.limits
        switch route {
        case .refresh:
            limits.maxBodyBytes = min(limits.maxBodyBytes, CraftRoute.refreshBodyBytes)
        case .endpoint(let path):
            // The token, and the deployment's `tokens` list when it has one (diff review 60, L-3: any gateway token
            // had its body read before the 403).
            var probe = exchange
            do {
                let principal = try probe.endpointPrincipal(target: target)
                if let deployment = craft.configuration.deployment(endpointURLPath: path) {
                    try CraftExchange.checkMayTrigger(deployment, principal: principal)
                }
            } catch {
                var response = CraftAnswer.error(gatewayError(from: error), requestID: requestID)
                CraftExchange.challenge(&response, for: route)
                return .respond(response, closeConnection: false)
            }
        case .executeDeployment(let name):
            // The access token, and the deployment's `tokens` list (diff review 60, L-3, as on `/endpoints/`).
            do {
                let principal = try craft.principal(
                    authorization: exchange.authorization,
                    connectionPrincipal: services.authenticator.certificatePrincipal)
                if let deployment = craft.configuration.deployment(named: name) {
                    try CraftExchange.checkMayTrigger(deployment, principal: principal)
                }
            } catch {
                return fail(gatewayError(from: error))
            }
        default:
            if let refusal = craft.refusalBeforeBody(authorization: exchange.authorization) { return fail(refusal) }
        }
        let declaredLength = first("content-length").flatMap(Int.init)
        if let declared = declaredLength, declared > limits.maxBodyBytes {
            return fail(
                RESTErrors.bodyTooLarge(size: declared, limit: limits.maxBodyBytes, declared: true), close: true)
        }
        let contentType = first("content-type").map { MediaType.parse($0) }
        let kind: CraftBodyKind
        let bodyCollector: RESTBodyCollector
        switch contentType?.type {
        case nil, "application/json":
            (kind, bodyCollector) = (.json, .raw(limits: limits, expectedLength: declaredLength))
        case "application/x-www-form-urlencoded":
            (kind, bodyCollector) = (.form, .raw(limits: limits, expectedLength: declaredLength))
        case "multipart/form-data":
            guard let boundary = contentType?.parameters["boundary"], !boundary.isEmpty else {
                return fail(GatewayError(.invalidArgument, "multipart/form-data without a boundary parameter"))
            }
            do {
                (kind, bodyCollector) = (
                    .multipart,
                    try .multipartParts(boundary: boundary, limits: limits, expectedLength: declaredLength)
                )
            } catch {
                return fail(gatewayError(from: error))
            }
        case let other?:
            return fail(
                GatewayError(
                    .unsupportedMediaType,
                    "content type \"\(other)\" is not supported here; send application/json, "
                        + "application/x-www-form-urlencoded or multipart/form-data"
                )
            )
        }
        collector = bodyCollector
        // `refresh` carries its credential in its body: read before authentication, from a pool of its own.
        if case .refresh = route { collector.unauthenticated = true }
        use = .use(
            .work(
                RESTBodyWork(requestID: requestID, errorFormat: .craft) { body in
                    let craftBody: CraftRequestBody
                    switch (kind, body) {
                    case (.json, .bytes(let bytes)): craftBody = .json(bytes)
                    case (.form, .bytes(let bytes)): craftBody = .form(bytes)
                    case (.multipart, .parts(let parts)): craftBody = .multipart(parts)
                    default:
                        return CraftAnswer.error(GatewayError(.internalError, "unexpected body"), requestID: requestID)
                    }
                    return await exchange.answer(route, body: craftBody)
                }))
        return .readBody
    }
}

/// The failure of a finished execution, thrown by the reads of its results so that it is answered as a stored
/// failure (``CraftAnswer/storedFailure(_:requestID:)``), not as a live call's error.
struct CraftStoredFailure: Error {
    var error: GatewayError
}

enum CraftBodyKind: Sendable {
    case json, form, multipart
}

/// One Craft AI request, with what its head said, answered off the event loop.
struct CraftExchange: Sendable {
    var craft: CraftSurface
    var services: FrontendServices
    var requestID: String
    /// The request's method (HEAD is routed as GET): `DELETE` on a deployment is `delete_deployment`.
    var method: String
    var target: String
    var authorization: String?
    var host: String?
    /// `RESTRequestHead.externalScheme`: `https` over TLS or behind a TLS-terminating proxy.
    var scheme: String
    /// The request's trace context: an execution's run carries it to the backend and webhooks.
    var trace: TraceContext

    /// The principal the request authenticated as, once it did: for its record (``RequestNaming``).
    var principal: String? = nil

    /// A 401 under `/endpoints/` challenges the schemes that work there (RFC 9110 §11.6.1): EndpointToken (what
    /// the SDK sends, CLIENTS.md §3.5) and Bearer (`endpointPrincipal`); `?token=` has no scheme (review 59, F12).
    /// Every 401 of the route, answered at its head (security review 60, H1) or after its body.
    static func challenge(_ response: inout RESTResponse, for route: CraftRoute) {
        guard response.status == 401, route.isEndpoint else { return }
        response.headers.removeAll { $0.name == "www-authenticate" }
        response.headers.append(("www-authenticate", "EndpointToken, Bearer"))
    }

    func answer(_ route: CraftRoute, body: CraftRequestBody?) async -> RESTResponse {
        var exchange = self
        var response: RESTResponse
        do {
            response = try await exchange.respond(route, body: body)
        } catch let failure as CraftStoredFailure {
            response = CraftAnswer.storedFailure(
                CraftAnswer.executionWording(failure.error, id: route.executionID), requestID: requestID)
        } catch {
            let error = gatewayError(from: error, requestID: requestID)
            response = CraftAnswer.error(
                CraftAnswer.executionWording(error, id: route.executionID), requestID: requestID)
        }
        Self.challenge(&response, for: route)
        // The pipeline was named from the path at the head; only the principal is learnt here, and the execution
        // (an async operation) the request created (`execute`) or named in its path (review 26 H2).
        let operationID = response.naming?.operationID ?? route.executionID
        if exchange.principal != nil || operationID != nil {
            response.naming = RequestNaming(
                ref: nil, mode: nil, route: nil, principal: exchange.principal, operationID: operationID)
        }
        return response
    }

    /// The principal of the request's access token (`Authorization: Bearer`), kept for its record.
    private mutating func authenticate() async throws -> String? {
        principal = try craft.principal(
            authorization: authorization, connectionPrincipal: services.authenticator.certificatePrincipal)
        return principal
    }

    /// The principal of an SDK or endpoint token, kept for its record.
    private mutating func authenticated(_ principal: String?) -> String? {
        self.principal = principal
        return principal
    }

    /// The principal of a call under `/endpoints/`: `Authorization: EndpointToken <t>` (or `Bearer`) when the
    /// header is sent, else `?token=` (what the SDK appends to result and file URLs), on the trigger and on both
    /// result reads alike, as README's Craft AI section says (review 59, F3: the reads took only `?token=`).
    /// A header that names no token of this gateway gives way to a `?token=` sent with it: a proxy in front may
    /// add its own `Authorization` (Basic, an oauth2-proxy bearer) to the SDK's `?token=` reads (review 59, L9).
    /// - Throws: `.unauthenticated` naming both forms when neither is sent, "invalid token" for an unknown one.
    fileprivate mutating func endpointPrincipal(target: String) throws -> String? {
        let authenticator = services.authenticator
        if let authorization {
            let byHeader = Result { () throws(GatewayError) in
                try authenticator.authenticate(authorization: authorization)
            }
            if case .success(let principal) = byHeader { return authenticated(principal) }
            guard let token = try RESTQuery(target: target).credential("token"), !token.isEmpty else {
                return authenticated(try byHeader.get())
            }
            return authenticated(try authenticator.authenticate(token: token))
        }
        let token = try RESTQuery(target: target).credential("token")
        if authenticator.authRequired, token?.isEmpty ?? true {
            throw GatewayError(
                .unauthenticated, "missing endpoint token: send Authorization: EndpointToken <token>, or ?token=")
        }
        return authenticated(try authenticator.authenticate(token: token))
    }

    private var operations: AsyncOperations {
        get throws {
            guard let operations = services.operations else {
                throw GatewayError(.unimplemented, "executions need async mode, which is not available on this gateway")
            }
            return operations
        }
    }

    private mutating func respond(_ route: CraftRoute, body: CraftRequestBody?) async throws -> RESTResponse {
        let limits = services.limits
        switch route {
        case .refresh:
            return try await refresh(body ?? .json(ByteBuffer()))
        case .pipeline(let name):
            _ = try await authenticate()
            if method == "DELETE" {
                throw GatewayError(
                    .unimplemented,
                    "pipeline \"\(name)\" is a route of the gateway's configuration and cannot be deleted through "
                        + "the API: remove its route (and its craft.pipelines entry) and reload the configuration")
            }
            let description = try await knownDescription(of: craft.ref(pipeline: name), refusingUnknown: true)
            return CraftAnswer.json(
                CraftAnswer.pipeline(name: name, description, createdAt: craft.loadedAt), requestID: requestID)
        case .pipelines:
            _ = try await authenticate()
            if method == "POST" {
                // `create_pipeline` uploads the function's code (multipart, CLIENTS.md §3): the gateway runs
                // none, and does not read the upload (`CraftRoute.readsBody`): HTTP/1.1 discards it after the
                // answer, or closes when the client held it back for a `100 Continue`; HTTP/2 resets nothing.
                throw GatewayError(
                    .unimplemented,
                    "this gateway does not create pipelines: a pipeline is a route of its configuration to a runner "
                        + "that serves it; add the route (and a craft.pipelines entry for its declared inputs) and "
                        + "reload the configuration, then run it by name (run_pipeline)")
            }
            return CraftAnswer.list(
                pipelineNames().map { CraftAnswer.pipelineListItem(name: $0, createdAt: craft.loadedAt) },
                requestID: requestID)
        case .pipelineExecutions(let name):
            let principal = try await authenticate()
            let ref = craft.ref(pipeline: name)
            try await checkPipelineExists(name, what: "pipeline")
            let executions = try await executions(
                matching: OperationFilter(pipeline: OperationFilter.pipelineKey(ref)), visibleTo: principal,
                limit: Self.executionListLimit)
            return CraftAnswer.list(executions.map(CraftAnswer.executionSummary), requestID: requestID)
        case .latestPipelineExecution(let name):
            let principal = try await authenticate()
            let ref = craft.ref(pipeline: name)
            try await checkPipelineExists(name, what: "pipeline")
            let filter = OperationFilter(pipeline: OperationFilter.pipelineKey(ref))
            guard let latest = try await executions(matching: filter, visibleTo: principal, limit: 1).first else {
                return RESTResponse(status: 204, headers: [("request-id", requestID)], body: ByteBuffer())
            }
            return CraftAnswer.json(["execution_id": .string(latest.id)], requestID: requestID)
        case .execution(let id):
            let principal = try await authenticate()
            if method == "DELETE" { return try await deleteExecution(id, principal: principal) }
            let operation = try await visibleExecution(id, principal: principal)
            let values = try RESTQuery(target: target).boolean("include_io_values") ?? true
            // The status read answers whatever the values' size: a set over the cap is left out (`overCap`).
            var outputs: [CraftMappings.MappedOutput] = []
            var overCap = CraftAnswer.OverCap()
            if operation.state == .succeeded {
                (outputs, overCap.outputs) = try mappedOutputs(operation)
            }
            overCap.inputs = ioCap(of: operation).excess(
                CraftExecution.values(of: operation.request.shownInputs), what: "inputs")
            return CraftAnswer.json(
                CraftAnswer.execution(operation, outputs: outputs, includeValues: values, overCap: overCap),
                requestID: requestID)
        case .executionLogs(let id):
            let principal = try await authenticate()
            let query = try CraftLogQuery(body ?? .json(ByteBuffer()), limits: limits)
            let operation = try await visibleExecution(id, principal: principal)
            let lines = query.select(CraftAnswer.executionLog(operation))
            // The SDK reads the first element: the logs of the execution's one pipeline run.
            return RESTResponse.json(
                status: 200, body: JSONValueCodec.encode(.list([.list(lines.map(Value.object))])),
                requestID: requestID)
        case .pipelineLogs(let name):
            _ = try await authenticate()
            throw GatewayError(
                .unimplemented,
                "get_pipeline_logs is not served: the runner protocol carries no log output; the gateway records "
                    + "each execution's events, read with get_pipeline_execution_logs(execution_id) "
                    + "(list_pipeline_executions(\"\(name)\") names them)")
        case .deploymentLogs(let name):
            _ = try await authenticate()
            throw GatewayError(
                .unimplemented,
                "get_deployment_logs is not served: the runner protocol carries no log output; the gateway records "
                    + "each execution's events, read with get_pipeline_execution_logs(execution_id) (GET "
                    + "/api/v1/deployments/\(name)/executions/latest names the newest)")
        case .executionInput(let id, let name):
            let principal = try await authenticate()
            let operation = try await visibleExecution(id, principal: principal)
            guard let value = CraftExecution.values(of: operation.request.shownInputs)[name] else {
                throw GatewayError(.notFound, "execution \(id) has no input \"\(name)\"")
            }
            return valueResponse(value)
        case .runPipeline(let name):
            let principal = try await authenticate()
            let run = try (body ?? .form(ByteBuffer())).pipelineRun(limits: limits)
            return try await execute(
                ref: craft.ref(pipeline: name),
                inputs: run.inputs,
                mappings: run.mappings,
                deployment: nil,
                principal: principal
            )
        case .executionOutputs(let id):
            let principal = try await authenticate()
            let waits = try RESTQuery(target: target).boolean("wait_for_completion") ?? false
            guard let operation = try await finishedExecution(id, principal: principal, wait: waits) else {
                return CraftAnswer.stillRunning(id, location: target, requestID: requestID)
            }
            let outputs = try succeededOutputs(operation)
            return CraftAnswer.json(CraftAnswer.executionOutputs(id: id, outputs), requestID: requestID)
        case .executionOutput(let id, let name):
            let principal = try await authenticate()
            guard let operation = try await finishedExecution(id, principal: principal, wait: false) else {
                throw GatewayError(.failedPrecondition, "execution \(id) has not finished yet")
            }
            return try outputValue(named: name, of: operation, byEndpointName: false)
        case .deployments:
            _ = try await authenticate()
            var items: [ValueObject] = []
            for deployment in deployments() {
                items.append(
                    CraftAnswer.deploymentListItem(
                        deployment, isEnabled: try await isEnabled(deployment), createdAt: craft.loadedAt))
            }
            return CraftAnswer.list(items, requestID: requestID)
        case .createDeployment(let rule):
            _ = try await authenticate()
            let request = try CraftDeploymentRequest(body ?? .json(ByteBuffer()), rule: rule, limits: limits)
            let deployment = try await createdDeployment(request)
            return CraftAnswer.json(try await deploymentAnswer(deployment), requestID: requestID)
        case .deployment(let name):
            _ = try await authenticate()
            let deployment = try await existingDeployment(named: name)
            if method == "DELETE" {
                throw GatewayError(
                    .unimplemented,
                    "deployment \"\(name)\" is part of the gateway's configuration and cannot be deleted through "
                        + "the API: remove it from craft.deployments (or its route) and reload the configuration")
            }
            if method == "PATCH" {
                throw GatewayError(
                    .unimplemented,
                    "deployment \"\(name)\" is part of the gateway's configuration and cannot be updated through "
                        + "the API: change its craft.deployments entry and reload the configuration (a periodic one's "
                        + "operators may pause its schedule: POST /v1beta/schedules/{name}:pause)")
            }
            return CraftAnswer.json(try await deploymentAnswer(deployment), requestID: requestID)
        case .latestExecution(let name):
            let principal = try await authenticate()
            let deployment = try await existingDeployment(named: name)
            guard let latest = try await latestExecution(of: deployment, visibleTo: principal) else {
                return RESTResponse(status: 204, headers: [("request-id", requestID)], body: ByteBuffer())
            }
            return CraftAnswer.json(["execution_id": .string(latest.id)], requestID: requestID)
        case .executeDeployment(let name):
            // `trigger_endpoint` without an endpoint token: the same deployment, so the same `tokens` rule as
            // `/endpoints/{path}` (review 23 H2: this path had skipped it).
            let principal = try await authenticate()
            let deployment = try await existingDeployment(named: name)
            try Self.checkMayTrigger(deployment, principal: principal)
            // A periodic deployment runs on its schedule only (README: it has no endpoint); a run from here would
            // bypass a pause and its `overlap` policy (review 59, F6). The SDK refuses it on its token path too.
            // The schedule's routes are named to whom may use them (security review 60, M2: they were named to all).
            guard deployment.executionRule == .endpoint else {
                let schedule = CraftDeploymentConfiguration.scheduleNamePrefix + name
                let mayControl =
                    deployment.schedule?.mayControl(
                        principal: principal, authRequired: services.authenticator.authRequired) ?? false
                let next =
                    mayControl
                    ? "as one of its operators, pause, resume or run it now with POST /v1beta/schedules/\(schedule)"
                        + ":pause, :resume or :trigger"
                    : "only its operators (craft.deployments[].operators) may pause, resume or run it now"
                throw GatewayError(
                    .failedPrecondition,
                    "deployment \"\(name)\" is periodic: it runs on its schedule (\(schedule)) and cannot be "
                        + "triggered here; \(next)")
            }
            return try await execute(deployment, body: body, principal: principal)
        case .endpoint(let path):
            let principal = try endpointPrincipal(target: target)
            return try await execute(
                try await endpointDeployment(path, principal: principal), body: body, principal: principal)
        case .endpointExecution(let path, let id):
            let principal = try endpointPrincipal(target: target)
            let deployment = try await endpointDeployment(path, principal: principal)
            guard
                let operation = try await finishedExecution(
                    id, principal: principal, wait: true, deployment: deployment.name)
            else {
                return CraftAnswer.stillRunning(id, location: target, requestID: requestID)
            }
            let outputs = try succeededOutputs(operation)
            let base = "\(baseURL)/endpoints/v1/\(Self.escape(path))/executions/\(Self.escape(id))/outputs/"
            return CraftAnswer.json(
                CraftAnswer.endpointOutputs(id: id, outputs, fileURLPrefix: base), requestID: requestID)
        case .endpointOutput(let path, let id, let name):
            let principal = try endpointPrincipal(target: target)
            let deployment = try await endpointDeployment(path, principal: principal)
            guard
                let operation = try await finishedExecution(
                    id, principal: principal, wait: false, deployment: deployment.name)
            else {
                throw GatewayError(.failedPrecondition, "execution \(id) has not finished yet")
            }
            return try outputValue(named: name, of: operation, byEndpointName: true)
        }
    }

    // MARK: Auth

    /// `{"refresh_token": <sdk token>}` → `{"access_token": <jwt>}`. With auth off any SDK token is taken.
    private mutating func refresh(_ body: CraftRequestBody) async throws -> RESTResponse {
        guard case .json(let bytes) = body else {
            throw GatewayError(.unsupportedMediaType, "send {\"refresh_token\": ...} as application/json")
        }
        let object = try JSONValueCodec.decodeObject(bytes, limits: services.limits, what: "request body")
        guard case .string(let token)? = object["refresh_token"], !token.isEmpty else {
            throw GatewayError(.invalidArgument, "the body needs a string \"refresh_token\" (the SDK token)")
        }
        let principal = authenticated(try services.authenticator.authenticate(token: token))
        // Bound to the SDK token only when tokens are checked: with auth off any value is taken, and binding a
        // JWT to it would mean nothing.
        let jwt = try await craft.accessTokens.issue(
            subject: principal ?? CraftAccessTokens.anonymousSubject,
            sdkTokenBinding: principal == nil ? nil : craft.accessTokens.binding(ofSDKToken: token))
        return CraftAnswer.json(["access_token": .string(jwt)], requestID: requestID)
    }

    // MARK: Pipelines

    /// The pipelines `list_pipelines` shows: those the route table names in the surface's namespace, those
    /// described under `craft.pipelines` and those deployments name, each only while a route serves it. A
    /// `*` route names no pipeline, so what only a wildcard serves is not listed (the runner protocol has no
    /// call that lists pipelines).
    private func pipelineNames() -> [String] {
        services.dispatcher.servedPipelines(
            in: craft.configuration.namespace,
            including: craft.configuration.pipelines.map(\.name)
                + (craft.configuration.deployments ?? []).map(\.pipeline))
    }

    // MARK: Deployments

    /// What `list_deployments` shows: the configured deployments, or (implicit deployments) one per pipeline
    /// `list_pipelines` shows, named after it.
    private func deployments() -> [CraftDeploymentConfiguration] {
        if let configured = craft.configuration.deployments { return configured }
        return pipelineNames().compactMap { craft.configuration.deployment(named: $0) }
    }

    /// `get_deployment`'s answer (also `create_deployment`'s): its constants redacted for every caller
    /// (``CraftAnswer/inputMappings(_:declared:)``).
    private func deploymentAnswer(_ deployment: CraftDeploymentConfiguration) async throws -> ValueObject {
        CraftAnswer.deployment(
            deployment,
            isEnabled: try await isEnabled(deployment),
            createdAt: craft.loadedAt,
            declared: craft.configuration.pipeline(named: deployment.pipeline)
        )
    }

    /// `deployment`'s `is_enabled`: false for a periodic deployment whose schedule is paused now, configured so or
    /// `:pause`d, as `/v1beta/schedules` says (one read of that schedule's stored state, `Scheduler.isPaused`), as
    /// Craft AI shows a deployment that runs nothing (SDK review 56, L2: a paused one read as enabled).
    private func isEnabled(_ deployment: CraftDeploymentConfiguration) async throws -> Bool {
        guard let schedule = deployment.schedule, let scheduler = services.scheduler else { return true }
        return try await !scheduler.isPaused(name: schedule.name)
    }

    /// `create_deployment`: deployments are configuration, so the one shape honoured is a deployment that
    /// exists already as asked (the same pipeline, execution rule, endpoint path or schedule, and no mappings
    /// beyond the configured ones), which the SDK then reads with `get_deployment` as it does after a real
    /// creation. A name taken by a different deployment is 409 ALREADY_EXISTS; a deployment that would have to
    /// be added is 501 UNIMPLEMENTED, saying what to add to the configuration. The pipeline must be served
    /// (404 otherwise). An `endpoint_token`, when given, must be a configured token the deployment takes.
    private func createdDeployment(_ request: CraftDeploymentRequest) async throws -> CraftDeploymentConfiguration {
        try await checkPipelineExists(request.pipeline, what: "pipeline")
        let existing: CraftDeploymentConfiguration?
        if craft.configuration.deployments != nil || request.name == request.pipeline {
            existing = craft.configuration.deployment(named: request.name)
        } else {
            // Implicit deployments: the name is a deployment only when a pipeline of that name is served.
            existing = try await deploymentIfExists(named: request.name)
        }
        guard let existing else { throw GatewayError(.unimplemented, request.configurationHint) }
        if let mismatch = request.mismatch(with: existing) {
            throw GatewayError(
                .conflict,
                "deployment \"\(request.name)\" already exists with \(mismatch); deployments are the gateway's "
                    + "configuration (craft.deployments): change it there and reload")
        }
        if let token = request.endpointToken {
            // Craft AI would set the endpoint's secret to it; here endpoint tokens are the configured `tokens`,
            // so the one given must be among them (and one the deployment takes). An unknown one is 403, not
            // the authenticator's 401: the caller's own (SDK) credentials were good.
            let owner: String?
            do {
                owner = try services.authenticator.authenticate(token: token)
            } catch {
                throw GatewayError(
                    .permissionDenied,
                    "the endpoint_token given is not a configured token: endpoint tokens are the gateway's "
                        + "configuration (tokens, craft.deployments[].tokens), not set through the API")
            }
            if let owner, !existing.tokens.isEmpty, !existing.tokens.contains(owner) {
                throw GatewayError(
                    .permissionDenied,
                    "the endpoint_token given may not trigger deployment \"\(request.name)\" (its tokens are "
                        + "configured: craft.deployments[].tokens)")
            }
        }
        return existing
    }

    /// A configured deployment, or (with implicit deployments) the pipeline of that name when it exists.
    private func existingDeployment(named name: String) async throws -> CraftDeploymentConfiguration {
        guard let deployment = try await deploymentIfExists(named: name) else {
            throw GatewayError(.notFound, "deployment \"\(name)\" not found")
        }
        return deployment
    }

    /// The deployment named `name`, or nil when there is none (with implicit deployments: no such pipeline).
    private func deploymentIfExists(named name: String) async throws -> CraftDeploymentConfiguration? {
        guard let deployment = craft.configuration.deployment(named: name) else { return nil }
        if craft.configuration.deployments == nil {
            do {
                try await checkPipelineExists(deployment.pipeline, what: "deployment")
            } catch let error as GatewayError where error.code == .notFound {
                return nil
            }
        }
        return deployment
    }

    private func checkPipelineExists(_ name: String, what: String) async throws {
        do {
            _ = try await knownDescription(of: craft.ref(pipeline: name))
        } catch let error as GatewayError where error.code == .notFound {
            throw GatewayError(.notFound, "\(what) \"\(name)\" not found")
        }
    }

    /// What is known of pipeline `ref`: `.notFound` when no route serves it or its runner says it has no such
    /// pipeline; otherwise its description (`CraftDescriptions`: the dispatcher's cache, then `craft.pipelines`). A runner that cannot be asked right now
    /// (down, slow, broken: any error but NOT_FOUND) refuses nothing (README "Unknown pipelines", as Instill's
    /// trigger-async and Abacus' `runPipeline` do): the route table says the pipeline is served, so it is
    /// described as taking any inputs, the SDK goes on, and its execution is stored and run when the runner is
    /// back. That answer is not cached: the next call asks the runner again.
    ///
    /// With `refusingUnknown` (`get_pipeline`, which `run_pipeline` reads first to know which inputs are files) such
    /// a runner is `.unavailable` (503) instead: described as taking any inputs, a file input given as a path went as
    /// the path's string, and its execution ran later on that string and read Succeeded (review 59, F1). The SDK
    /// raises the 503 before it sends anything.
    private func knownDescription(of ref: PipelineRef, refusingUnknown: Bool = false) async throws
        -> PipelineDescription
    {
        _ = try services.dispatcher.pool(for: ref)
        do {
            return try await craft.descriptions.description(of: ref)
        } catch let error as GatewayError where error.code == .notFound {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            guard refusingUnknown else { return PipelineDescription() }
            let reason = (error as? GatewayError)?.message ?? "\(error)"
            throw GatewayError(
                .unavailable,
                "pipeline \"\(ref.pipeline)\" cannot be described now (its runner: \(reason)), and no description of it "
                    + "is kept: which of its inputs are files is unknown; retry when the runner is back, or declare "
                    + "the pipeline in craft.pipelines")
        }
    }

    /// The deployment at `/endpoints/{path}`, checked against the presented token's principal.
    private func endpointDeployment(_ path: String, principal: String?) async throws -> CraftDeploymentConfiguration {
        guard let deployment = craft.configuration.deployment(endpointURLPath: path) else {
            throw GatewayError(.notFound, "no endpoint at /endpoints/\(path)")
        }
        if craft.configuration.deployments == nil {
            try await checkPipelineExists(deployment.pipeline, what: "endpoint")
        }
        try Self.checkMayTrigger(deployment, principal: principal)
        return deployment
    }

    /// README "Auth": a deployment that lists `tokens` takes only those principals, on every path that runs it
    /// (`/endpoints/{path}`, and `POST /api/v1/deployments/{name}/executions`, what `trigger_endpoint` sends
    /// without an endpoint token). An anonymous caller (no tokens configured) is not among them.
    /// - Throws: `GatewayError(.permissionDenied)` naming the endpoint.
    static func checkMayTrigger(_ deployment: CraftDeploymentConfiguration, principal: String?) throws {
        guard !deployment.tokens.isEmpty, !(principal.map(deployment.tokens.contains) ?? false) else { return }
        throw GatewayError(
            .permissionDenied,
            "this token may not trigger the deployment \"\(deployment.name)\": it takes only the tokens its "
                + "craft.deployments[].tokens lists")
    }

    // MARK: Executions

    /// `DELETE /api/v1/executions/{id}` (`delete_pipeline_execution`, "Delete one pipeline execution"), answered
    /// `{"execution_id"}` (the SDK's documented shape):
    /// - a finished execution (succeeded, failed or cancelled) is deleted with its files, as `store.retention`
    ///   deletes it; later reads of it are 404. 409 FAILED_PRECONDITION while its completion webhook is still to
    ///   be delivered (the receiver is owed it; retention waits for it too);
    /// - an unfinished one is stopped: cancelled as `POST /v1beta/operations/{id}:cancel` cancels it (the one way
    ///   to end a run that waits for a runner that is down) and kept, so the calls waiting on it (`run_pipeline`)
    ///   read CANCELLED rather than 404; a second delete removes it.
    ///
    /// 404 for an unknown id or another principal's execution. 403 PERMISSION_DENIED for deleting a finished run
    /// of a schedule (a periodic deployment's), and one of no principal when the caller has one (auth on); and,
    /// before anything is cancelled, for an unfinished schedule's run the caller may not cancel (not one of the
    /// schedule's operators, with tokens required: `Operation.checkMayCancel`; security review 60, M2: it was
    /// cancelled, and only the second delete got the 403).
    private func deleteExecution(_ id: String, principal: String?) async throws -> RESTResponse {
        let operations = try operations
        let existing = try await visibleExecution(id, principal: principal)
        var finished = existing.state.isFinished
        if !finished {
            try RESTOperations.checkMayCancel(
                existing, principal: principal, authRequired: services.authenticator.authRequired,
                scheduler: services.scheduler)
            do {
                _ = try await operations.cancel(id: id)
            } catch let error as GatewayError where error.code == .failedPrecondition {
                finished = true  // It finished between the read and the cancel: it is deleted as finished.
            }
        }
        if finished {
            // A schedule's run (a periodic deployment's): its tick's idempotency key is what keeps the tick to one
            // run across instances, and a delete frees the key at once (diff review 55, L3). It also belongs to no
            // principal and every caller sees it (SDK review 55, F5). Neither is for one caller to remove.
            if existing.idempotencyKey?.hasPrefix(ScheduleRunKey.prefix) == true
                || (existing.request.principal == nil && principal != nil)
            {
                throw GatewayError(
                    .permissionDenied,
                    "execution \(id) is a schedule's run (or another run of no principal, which every caller sees), "
                        + "so no caller may delete it; store.retention removes it")
            }
            try await operations.delete(id: id)
        }
        return CraftAnswer.json(["execution_id": .string(id)], requestID: requestID)
    }

    /// An execution of a deployment: the endpoint's body as its inputs, through the deployment's mappings.
    private func execute(
        _ deployment: CraftDeploymentConfiguration,
        body: CraftRequestBody?,
        principal: String?
    ) async throws -> RESTResponse {
        try await execute(
            ref: craft.ref(pipeline: deployment.pipeline, release: deployment.release),
            inputs: try (body ?? .json(ByteBuffer())).endpointInputs(limits: services.limits),
            mappings: CraftMappings(deployment: deployment),
            deployment: deployment,
            principal: principal
        )
    }

    /// Creates the execution: the cap on the inputs as sent, then the mapping, then a stored operation.
    private func execute(
        ref: PipelineRef,
        inputs: ValueObject,
        mappings: CraftMappings,
        deployment: CraftDeploymentConfiguration?,
        principal: String?
    ) async throws -> RESTResponse {
        let operations = try operations
        var request = try CraftExecution.request(
            ref: ref,
            inputs: inputs,
            mappings: mappings,
            deployment: deployment,
            cap: craft.ioCap(for: deployment),
            principal: principal,
            requestID: requestID,
            declared: craft.configuration.pipeline(named: ref.pipeline)
        )
        request.traceParent = trace.traceParent
        request.traceState = trace.traceState
        // Unknown pipelines are refused now, not after the execution was stored and claimed.
        _ = try services.dispatcher.pool(for: ref)
        if services.health.status(.async) != .serving { throw services.health.asyncRefusal }
        let operation = try await operations.submit(request)
        var response = CraftAnswer.json(["execution_id": .string(operation.id)], requestID: requestID)
        response.naming = .operation(operation.id)
        return response
    }

    /// At most this many executions in `list_pipeline_executions`'s answer, newest first (Craft AI's own
    /// endpoint has no paging parameters; the whole history is under `/v1beta/operations`, paged).
    static let executionListLimit = 1000

    /// At most this many of a pipeline's newest executions are looked through for those the caller may see
    /// (ten of the store's largest pages): a read costs the store bounded work however long its history.
    static let executionScanLimit = 10 * OperationPaging.maximumPageSize

    /// The newest executions `filter` matches (a pipeline's, any release and deployment; or a deployment's) that
    /// `principal` may see and `belongs` takes, at most `limit`, among the newest ``executionScanLimit`` it
    /// matches (the store's pages, newest first, read until enough are found, none are left, or that many were
    /// looked through).
    private func executions(
        matching filter: OperationFilter, visibleTo principal: String?, limit: Int,
        where belongs: (Operation) -> Bool = { _ in true }
    ) async throws -> [Operation] {
        let operations = try operations
        var found: [Operation] = []
        var token: String? = nil
        var scanned = 0
        // A small first page for the common case (`executions/latest`: the newest is the caller's), then large.
        var pageSize = min(max(limit, OperationPaging.defaultPageSize), OperationPaging.maximumPageSize)
        repeat {
            let page = try await operations.list(filter: filter, pageSize: pageSize, pageToken: token)
            pageSize = OperationPaging.maximumPageSize
            for operation in page.operations
            where RESTOperations.isVisible(operation, to: principal) && belongs(operation) {
                found.append(operation)
                if found.count == limit { return found }
            }
            scanned += page.operations.count
            token = page.nextPageToken
        } while token != nil && scanned < Self.executionScanLimit
        return found
    }

    /// The newest execution of `deployment` that `principal` may see, as craft-ai-sdk's endpoint call reads it
    /// (`…/executions/latest` before it posts, CLIENTS.md): an execution of the deployment *as configured now*,
    /// so of its pipeline (a deployment the configuration moved to another pipeline does not answer with the
    /// old pipeline's runs), and found whenever it was stored.
    ///
    /// The store finds the deployment's executions by its `deployment` column, however many of other
    /// deployments (or plain runs of the pipeline) are newer. Executions stored before that column existed have
    /// none there, and are all older than any that has one: only when none has are they looked for, by the
    /// request's `TriggerRequest.deploymentLabel`, among the pipeline's newest (``executionScanLimit``).
    private func latestExecution(
        of deployment: CraftDeploymentConfiguration, visibleTo principal: String?
    ) async throws -> Operation? {
        let pipeline = OperationFilter.pipelineKey(craft.ref(pipeline: deployment.pipeline))
        let indexed = OperationFilter(pipeline: pipeline, deployment: deployment.name)
        if let latest = try await executions(matching: indexed, visibleTo: principal, limit: 1).first {
            return latest
        }
        return try await executions(matching: OperationFilter(pipeline: pipeline), visibleTo: principal, limit: 1) {
            $0.request.labels[TriggerRequest.deploymentLabel] == deployment.name
        }.first
    }

    /// The execution `id` as it is now; 404 for an unknown id or one of another principal.
    private func visibleExecution(_ id: String, principal: String?) async throws -> Operation {
        let operation = try await operations.get(id: id)
        try RESTOperations.checkVisible(operation, to: principal)
        return operation
    }

    /// The execution once finished, waiting up to the long-poll wait when `wait`; nil when it is still
    /// running. 404 for an unknown id, one of another principal, or one of another deployment.
    private func finishedExecution(
        _ id: String,
        principal: String?,
        wait: Bool,
        deployment: String? = nil
    ) async throws -> Operation? {
        let operations = try operations
        // Whose it is is checked before any wait, so a caller that may not see it is not held.
        var operation = try await operations.get(id: id)
        try RESTOperations.checkVisible(operation, to: principal)
        if let deployment, operation.request.labels[CraftLabels.deployment] != deployment {
            throw OperationStoreErrors.notFound(id)
        }
        if !operation.state.isFinished, wait {
            operation = try await operations.get(id: id, wait: craft.configuration.longPollWait)
        }
        return operation.state.isFinished ? operation : nil
    }

    /// A finished execution's mapped outputs; its error when it failed (``CraftStoredFailure``); 413 when they
    /// are over its cap.
    private func succeededOutputs(_ operation: Operation) throws -> [CraftMappings.MappedOutput] {
        let (mapped, overCap) = try mappedOutputs(operation)
        if let overCap { throw overCap }
        return mapped
    }

    /// A finished execution's mapped outputs, and the 413 of the delivered ones when they are over its cap (nil
    /// when not); its error when it failed (``CraftStoredFailure``).
    private func mappedOutputs(_ operation: Operation) throws -> ([CraftMappings.MappedOutput], GatewayError?) {
        if let error = OperationView.error(operation) { throw CraftStoredFailure(error: error) }
        let outputs = CraftExecution.values(of: operation.result?.outputs ?? [])
        let mappings = try CraftMappings(outputsLabel: operation.request.labels[CraftLabels.outputsMapping])
        let deployment = operation.request.labels[CraftLabels.deployment]
        if let deployment { reportShadowedOutputs(mappings.shadowedOutputs(outputs.keys), of: operation, deployment) }
        let mapped = mappings.mappedOutputs(outputs, unmappedType: deployment == nil ? "run" : "endpoint")
        let delivered = ValueObject(
            mapped.compactMap { $0.endpointOutputName == nil ? nil : ($0.pipelineOutputName, $0.value) })
        return (mapped, ioCap(of: operation).excess(delivered, what: "outputs"))
    }

    /// Logs each output of `deployment` that its output mapping shadows (``CraftMappings/mappedOutputs(_:unmappedType:)``
    /// leaves it out) once per configuration: the operator's mapping clashes with what the runner answers, which the
    /// configuration could not see (the pipeline is not in `craft.pipelines`). A run's own mapping is the client's
    /// (and refused when the outputs are declared): not logged, so clients cannot grow the set of keys.
    private func reportShadowedOutputs(
        _ shadowed: [(output: String, mappedFrom: String)], of operation: Operation, _ deployment: String
    ) {
        for clash in shadowed where craft.isFirstReport("\(deployment)\n\(clash.output)\n\(clash.mappedFrom)") {
            services.logger.warning(
                "a pipeline output is left out of executions' results: an output mapping sends another output to its name",
                metadata: [
                    "craft.deployment": "\(deployment)",
                    "pipeline.ref": "\(operation.ref)",
                    "craft.output": "\(clash.output)",
                    "craft.mapped_from": "\(clash.mappedFrom)",
                ])
        }
    }

    /// The cap an execution was made under (its label; the configured one for an execution made elsewhere).
    private func ioCap(of operation: Operation) -> CraftIOCap {
        CraftIOCap(
            limit: operation.request.labels[CraftLabels.ioCap].flatMap(Int.init) ?? craft.configuration.maxIOBytes)
    }

    /// One output of a finished execution, by its endpoint output name (`/endpoints/v1/…`) or its pipeline output
    /// name (`/api/v1/executions/…`): a file as `application/octet-stream`, anything else as its JSON; one the
    /// output mapping drops (`is_null`) is `null` by its pipeline name, as `get_pipeline_execution` lists it
    /// (review 59, F12), and has no endpoint name. Its failure when it failed (``CraftStoredFailure``).
    ///
    /// The cap applies to the value read, not to the whole set (review 59, F11: one large output made a 1-byte
    /// one unreadable); the whole-set reads keep the whole set's cap.
    private func outputValue(named name: String, of operation: Operation, byEndpointName: Bool) throws -> RESTResponse {
        let (outputs, _) = try mappedOutputs(operation)
        guard
            let output = outputs.first(where: {
                byEndpointName ? $0.endpointOutputName == name : $0.pipelineOutputName == name
            })
        else {
            throw GatewayError(.notFound, "execution \(operation.id) has no output \"\(name)\"")
        }
        guard output.endpointOutputName != nil else { return valueResponse(.null) }
        if let error = ioCap(of: operation).excess(of: output.value, named: name, what: "output") { throw error }
        return valueResponse(output.value)
    }

    /// An input or output value: a file as `application/octet-stream` (the SDK returns the raw bytes,
    /// CLIENTS.md §3.3), anything else as its JSON.
    private func valueResponse(_ value: Value) -> RESTResponse {
        if case .blob(let blob) = value {
            return RESTResponse(
                status: 200,
                headers: [("content-type", "application/octet-stream"), ("request-id", requestID)],
                body: blob.bytes
            )
        }
        return RESTResponse.json(status: 200, body: JSONValueCodec.encode(value), requestID: requestID)
    }

    /// `http(s)://host` as the client addressed us, for the absolute `url` of file outputs (the SDK appends
    /// `?token=` and fetches it with `requests`, which needs a scheme).
    private var baseURL: String {
        "\(scheme)://\(host ?? "127.0.0.1")"
    }

    /// A path segment percent-encoded (RFC 3986 §3.3: unreserved characters stay).
    static func escape(_ segment: String) -> String {
        var out = ""
        for byte in segment.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(hex[Int(byte >> 4)])
                out.unicodeScalars.append(hex[Int(byte & 15)])
            }
        }
        return out
    }
}

/// The bodies the Craft AI surface answers with.
enum CraftAnswer {
    static func json(_ object: ValueObject, requestID: String) -> RESTResponse {
        .json(status: 200, body: JSONValueCodec.encode(.object(object)), requestID: requestID)
    }

    /// `{"message", "name", "request_id"}` with the error's HTTP status: the SDK raises `SdkException` with
    /// `message` for any status ≥ 400 (CLIENTS.md §3.3).
    static func error(_ error: GatewayError, requestID: String) -> RESTResponse {
        let object: ValueObject = [
            "message": .string(error.message),
            "name": .string(errorName(error)),
            "request_id": .string(requestID),
        ]
        var response = RESTResponse.json(
            status: error.code.httpStatus, body: JSONValueCodec.encode(.object(object)), requestID: requestID)
        if error.code.httpStatus == 401 { response.headers.append(("www-authenticate", "Bearer")) }
        if error.code.httpStatus == 503 || error.code == .tooManyRequests {
            response.headers.append(("retry-after", "1"))
        }
        return response
    }

    /// `error` as the Craft AI surface words it: the store's and the operation view's messages about execution
    /// `id` say "operation <id> …" (`operation … not found`, `operation … was cancelled`), the gateway's noun on the
    /// Instill surface; here they say "execution", as Craft AI and the rest of this surface do (review 59, F12).
    /// Only a message that starts with that id is changed: a runner's own words stay as they are.
    static func executionWording(_ error: GatewayError, id: String?) -> GatewayError {
        guard let id, error.message.hasPrefix("operation \(id)") else { return error }
        var error = error
        error.message = "execution" + error.message.dropFirst("operation".count)
        return error
    }

    /// A failed execution read back (its outputs, one output, an endpoint's result): the error's `message` and
    /// `name` with its code's status, except that a status that means "the service is busy or unreachable,
    /// try again" (429, 502, 503, 504) or "your credentials" (401, 403) is 500. The execution failed and stays
    /// failed; the gateway answered. At 502/504 craft-ai-sdk prints "The platform is currently unreachable.
    /// Please try again later." instead of the message, and 429/503 (with `Retry-After`) invite retry adapters
    /// to re-read an answer that never changes (review 23 L1). A pipeline's own `UNAUTHENTICATED` (a runner's
    /// API key refused) at 401 made the SDK drop its access token (`shared/authentication.py`), and 401/403 read
    /// as the caller's refusal; the `name` still says which code failed it. The gateway's own live refusals
    /// (overload, store unavailable, a bad token) keep theirs.
    static func storedFailure(_ error: GatewayError, requestID: String) -> RESTResponse {
        var response = self.error(error, requestID: requestID)
        if [401, 403, 429, 502, 503, 504].contains(response.status) {
            response.status = 500
            response.headers.removeAll { $0.name == "retry-after" || $0.name == "www-authenticate" }
        }
        return response
    }

    /// The google.rpc name of the error's code (`NOT_FOUND`, `INTERNAL`): what the SDK prints in brackets
    /// before the message.
    static func errorName(_ error: GatewayError) -> String {
        error.code.rpcCodeName
    }

    /// 307 to the same target: the long-poll ended before the execution did (RFC 9110 §15.4.8 keeps the
    /// method; the SDK re-sends on 307, `requests` follows `Location`).
    static func stillRunning(_ id: String, location: String, requestID: String) -> RESTResponse {
        var response = json(
            ["message": .string("execution \(id) is still running; request it again"), "execution_id": .string(id)],
            requestID: requestID
        )
        response.status = 307
        response.headers.append(("location", location))
        return response
    }

    /// A JSON array body: what `list_pipelines` and `list_pipeline_executions` return as they are.
    static func list(_ items: [ValueObject], requestID: String) -> RESTResponse {
        .json(status: 200, body: JSONValueCodec.encode(.list(items.map(Value.object))), requestID: requestID)
    }

    /// `GET /api/v1/pipelines/{name}`: `parameters.inputs[]` with `name` and `data_type` (what `run_pipeline`
    /// reads), and `creation_info`, which `get_pipeline` must find (it sets `creation_info.last_execution_id`
    /// and, when waiting, loops while `creation_info.status` is `creation_pending`). A routed pipeline is
    /// always `ready`: the gateway builds nothing. The keys the SDK documents that the gateway has no value for are
    /// null (review 59, F9: a script reading them got a KeyError); `created_at` is when the configuration was
    /// loaded (``CraftSurface/loadedAt``).
    static func pipeline(name: String, _ description: PipelineDescription, createdAt: Date) -> ValueObject {
        func list(_ parameters: [PipelineDescription.Parameter]) -> Value {
            .list(parameters.map { .object(["name": .string($0.name), "data_type": .string($0.dataType)]) })
        }
        return [
            "name": .string(name),
            "parameters": .object([
                "pipeline_name": .string(name),
                "function_path": .null,
                "function_name": .null,
                "description": .null,
                "inputs": list(description.inputs),
                "outputs": list(description.outputs),
                "container_config": .null,
            ]),
            "creation_info": .object([
                "created_at": time(createdAt),
                "created_by": .null,
                "commit_id": .null,
                "status": .string("ready"),
                "origin": .string("gateway"),
                "pipeline_template": .null,
            ]),
        ]
    }

    /// One `list_pipelines` item: `{pipeline_name, created_at, status}`. A route has no creation time of its own:
    /// `created_at` is when the configuration that serves it was loaded (``CraftSurface/loadedAt``; the SDK sorts
    /// by it, review 59, F9).
    static func pipelineListItem(name: String, createdAt: Date) -> ValueObject {
        ["pipeline_name": .string(name), "created_at": time(createdAt), "status": .string("ready")]
    }

    /// Craft AI's execution status (`EXECUTION_STATUS` of craft-ai-sdk 0.74.7) of an operation state. A
    /// cancelled operation is `Failed`: Craft AI has no cancelled state, and `Error` means a platform fault.
    static func status(_ state: OperationState) -> String {
        switch state {
        case .queued: "Pending"
        case .running: "Running"
        case .succeeded: "Succeeded"
        case .failed, .cancelled: "Failed"
        }
    }

    /// An RFC 3339 time (UTC, milliseconds), as stored.
    static func time(_ date: Date?) -> Value {
        date.map { .string(RFC3339.format(milliseconds: $0.storeMilliseconds)) } ?? .null
    }

    /// `list_pipeline_executions`'s item: `{execution_id, status, created_at, created_by, end_date,
    /// pipeline_name, deployment_name}`. `created_by` is the principal that started it (null when auth is off
    /// or for a schedule's run); `deployment_name` is null for a `run_pipeline` execution.
    static func executionSummary(_ operation: Operation) -> ValueObject {
        [
            "execution_id": .string(operation.id),
            "status": .string(status(operation.state)),
            "created_at": time(operation.createdAt),
            "created_by": operation.request.principal.map(Value.string) ?? .null,
            "end_date": time(operation.finishedAt),
            "pipeline_name": .string(operation.ref.pipeline),
            "deployment_name": operation.request.labels[CraftLabels.deployment].map(Value.string) ?? .null,
        ]
    }

    /// `GET /api/v1/executions/{id}` (`get_pipeline_execution`): the summary, `start_date`, `steps` (one, the
    /// pipeline's run), and `inputs` / `outputs` as `{pipeline_{input,output}_name, data_type, mapping_type,
    /// mapping_value, value?}` (the SDK reads `mapping_value` and spreads it into each item).
    ///
    /// An input's `mapping_type` is where the execution came from (`run` for `run_pipeline`, `endpoint` for a
    /// deployment): the values are the pipeline's inputs after the mappings, which are not kept. Outputs are
    /// listed once the execution succeeded, through its output mapping. A file carries no `value`: the SDK
    /// fetches `/inputs/{name}` or `/outputs/{name}` for it. `includeValues` false
    /// (`?include_io_values=false`) leaves every `value` out. A failed execution has `error` `{message, name}`.
    ///
    /// A set (inputs, outputs) whose non-file values are over the execution's cap (`overCap`, the 413 its own read
    /// answers) has its non-file `value`s left out, which craft-ai-sdk reads as `None`, and is named with that
    /// 413's message in `io_values_left_out` (`{"outputs": "the non-file outputs are … bytes, over the cap …"}`;
    /// absent when nothing was left out): the status, times and error stay readable (review 23, L2).
    static func execution(
        _ operation: Operation, outputs: [CraftMappings.MappedOutput], includeValues: Bool, overCap: OverCap = OverCap()
    ) -> ValueObject {
        var object = executionSummary(operation)
        object["start_date"] = time(operation.startedAt)
        object["steps"] = .list([
            .object([
                "name": .string(operation.ref.pipeline),
                "status": .string(status(operation.state)),
                "start_date": time(operation.startedAt),
                "end_date": time(operation.finishedAt),
            ])
        ])
        let source = operation.request.labels[CraftLabels.deployment] == nil ? "run" : "endpoint"
        let inputs = CraftExecution.values(of: operation.request.shownInputs)
        object["inputs"] = .list(
            inputs.keys.sorted().map { name in
                let value = inputs[name] ?? .null
                var item: ValueObject = [
                    "pipeline_input_name": .string(name),
                    "data_type": .string(dataType(value)),
                    "mapping_type": .string(source),
                    "mapping_value": .object([:]),
                ]
                if includeValues, overCap.inputs == nil, dataType(value) != "file" { item["value"] = value }
                return .object(item)
            })
        object["outputs"] = .list(
            outputs.map { output in
                var mapping = ValueObject()
                if let name = output.endpointOutputName {
                    // A run's own output is named as Craft AI names it (`run_output_name`, which the SDK drops).
                    mapping[output.mappingType == "run" ? "run_output_name" : "endpoint_output_name"] = .string(name)
                }
                var item: ValueObject = [
                    "pipeline_output_name": .string(output.pipelineOutputName),
                    "data_type": .string(dataType(output.value)),
                    "mapping_type": .string(output.mappingType),
                    "mapping_value": .object(mapping),
                ]
                if includeValues, overCap.outputs == nil, output.endpointOutputName != nil,
                    dataType(output.value) != "file"
                {
                    item["value"] = output.value
                }
                return .object(item)
            })
        if let error = OperationView.error(operation).map({ executionWording($0, id: operation.id) }) {
            object["error"] = .object([
                "message": .string(error.message), "name": .string(CraftAnswer.errorName(error)),
            ])
        }
        var leftOut = ValueObject()
        if includeValues, let error = overCap.inputs { leftOut["inputs"] = .string(error.message) }
        if includeValues, let error = overCap.outputs { leftOut["outputs"] = .string(error.message) }
        if !leftOut.isEmpty { object["io_values_left_out"] = .object(leftOut) }
        return object
    }

    /// The sets of an execution's values over its cap, each with the 413 its own read answers (nil: within it).
    struct OverCap {
        var inputs: GatewayError?
        var outputs: GatewayError?
    }

    /// `GET /api/v1/deployments/{name}`: the SDK reads `execution_rule` (`trigger_endpoint` needs `endpoint`)
    /// and `endpoint_url_path` (CLIENTS.md §3.5). A periodic deployment has no endpoint path; it shows its
    /// cron expression as `schedule` (Craft AI's field), with the zone and the schedule's name under
    /// `/v1beta/schedules`.
    ///
    /// Review 59, F9: the keys the SDK documents are all there. `inputs_mapping` / `outputs_mapping` as configured
    /// (``inputMappings(_:declared:)``), `created_at` and `updated_at` when the configuration was
    /// loaded, and null for what the gateway has no value for (`created_by`, `updated_by`, `description`).
    static func deployment(
        _ deployment: CraftDeploymentConfiguration,
        isEnabled: Bool,
        createdAt: Date,
        declared: CraftPipelineConfiguration?
    ) -> ValueObject {
        var pipeline: ValueObject = ["name": .string(deployment.pipeline)]
        if let release = deployment.release { pipeline["release"] = .string(release) }
        var object: ValueObject = [
            "name": .string(deployment.name),
            "pipeline": .object(pipeline),
            "execution_rule": .string(deployment.executionRule.rawValue),
            "mode": .string("elastic"),
            "is_enabled": .bool(isEnabled),
            // `get_deployment(wait_for_completion=True)`, which `create_deployment` calls by default, re-reads
            // the deployment until its status is final (`up`, ...): without one it would spin.
            "status": .string("up"),
            "inputs_mapping": inputMappings(deployment, declared: declared),
            "outputs_mapping": outputMappings(deployment, declared: declared),
            "created_at": time(createdAt),
            "created_by": .null,
            "updated_at": time(createdAt),
            "updated_by": .null,
            "description": .null,
        ]
        if let path = deployment.endpointURLPath { object["endpoint_url_path"] = .string(path) }
        if deployment.executionRule == .endpoint {
            // Present and null: the gateway never hands a token out (endpoint tokens are configured `tokens`,
            // whose secrets it does not print). craft-ai-sdk's documented pattern
            // `trigger_endpoint(name, deployment["endpoint_token"])` then takes its no-token path, the SDK token's
            // `POST /api/v1/deployments/{name}/executions` (CLIENTS.md §3.5), which the deployment's `tokens`
            // govern the same way; a missing key was a KeyError in the client's script.
            object["endpoint_token"] = .null
        }
        if let schedule = deployment.schedule {
            object["schedule"] = .string(schedule.cron.text)
            object["timezone"] = .string(schedule.timeZoneName)
            object["schedule_name"] = .string(schedule.name)
        }
        return object
    }

    /// One `list_deployments` item: `{name, pipeline_name, execution_rule, mode, is_enabled, created_at}`.
    /// `is_enabled` is false for a periodic deployment whose schedule is paused. A configured deployment has no
    /// creation time of its own: `created_at` is when the configuration was loaded (review 59, F9).
    static func deploymentListItem(
        _ deployment: CraftDeploymentConfiguration, isEnabled: Bool, createdAt: Date
    ) -> ValueObject {
        [
            "name": .string(deployment.name),
            "pipeline_name": .string(deployment.pipeline),
            "execution_rule": .string(deployment.executionRule.rawValue),
            "mode": .string("elastic"),
            "is_enabled": .bool(isEnabled),
            "created_at": time(createdAt),
        ]
    }

    /// The log of an execution (`get_pipeline_execution_logs`): its events (``OperationView/events(_:)``) as
    /// `{timestamp, message}` lines, oldest first, each with its time in milliseconds since the epoch for
    /// ``CraftLogQuery`` to select by.
    static func executionLog(_ operation: Operation) -> [(milliseconds: Int64, line: ValueObject)] {
        OperationView.events(operation).map { event in
            (
                event.milliseconds,
                [
                    "timestamp": .string(RFC3339.format(milliseconds: event.milliseconds)),
                    "message": .string(event.message),
                ]
            )
        }
    }

    /// Craft AI's data type of a value.
    static func dataType(_ value: Value) -> String {
        CraftExecution.dataType(of: value)
    }

    /// `{"execution_id", "outputs": [{"pipeline_output_name", "data_type", "mapping_type", "value"?,
    /// "endpoint_output_name"?}]}`: files carry no value (the SDK fetches `/outputs/{name}`), nor do dropped
    /// outputs.
    static func executionOutputs(id: String, _ outputs: [CraftMappings.MappedOutput]) -> ValueObject {
        let items: [Value] = outputs.map { output in
            var o: ValueObject = [
                "pipeline_output_name": .string(output.pipelineOutputName),
                "data_type": .string(dataType(output.value)),
                "mapping_type": .string(output.mappingType),
            ]
            if let name = output.endpointOutputName {
                if output.mappingType != "run" { o["endpoint_output_name"] = .string(name) }
                if dataType(output.value) != "file" { o["value"] = output.value }
            }
            return .object(o)
        }
        return ["execution_id": .string(id), "outputs": .list(items)]
    }

    /// `{"execution_id", "outputs": {name: {"value": v} | {"url": u}}}` by endpoint output name.
    static func endpointOutputs(id: String, _ outputs: [CraftMappings.MappedOutput], fileURLPrefix: String)
        -> ValueObject
    {
        var object = ValueObject()
        for output in outputs {
            guard let name = output.endpointOutputName else { continue }
            if case .blob = output.value {
                object[name] = .object(["url": .string(fileURLPrefix + CraftExchange.escape(name))])
            } else {
                object[name] = .object(["value": output.value])
            }
        }
        return ["execution_id": .string(id), "outputs": .object(object)]
    }
}
