import AsyncDispatch
import CraftSurface
import FoundationEssentials
import GatewayConfig
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
    func craftStart(_ route: CraftRoute, services: FrontendServices, requestID: String, trace: TraceContext)
        -> RESTStart
    {
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
            target: target,
            authorization: first("authorization"),
            host: first("host") ?? first(":authority"),
            scheme: externalScheme,
            trace: trace
        )
        guard route.readsBody else {
            return .run(RESTWork(requestID: requestID) { await exchange.answer(route, body: nil) })
        }
        func fail(_ error: GatewayError, close: Bool = false) -> RESTStart {
            .respond(CraftAnswer.error(error, requestID: requestID), closeConnection: close)
        }
        let declaredLength = first("content-length").flatMap(Int.init)
        if let declared = declaredLength, declared > services.limits.maxBodyBytes {
            return fail(
                RESTErrors.bodyTooLarge(size: declared, limit: services.limits.maxBodyBytes, declared: true),
                close: true)
        }
        let contentType = first("content-type").map { MediaType.parse($0) }
        let kind: CraftBodyKind
        let collector: RESTBodyCollector
        switch contentType?.type {
        case nil, "application/json":
            (kind, collector) = (.json, .raw(limits: services.limits, expectedLength: declaredLength))
        case "application/x-www-form-urlencoded":
            (kind, collector) = (.form, .raw(limits: services.limits, expectedLength: declaredLength))
        case "multipart/form-data":
            guard let boundary = contentType?.parameters["boundary"], !boundary.isEmpty else {
                return fail(GatewayError(.invalidArgument, "multipart/form-data without a boundary parameter"))
            }
            do {
                (kind, collector) = (.multipart, try .multipartParts(boundary: boundary, limits: services.limits))
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
        return .readBody(
            collector,
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
                })
        )
    }
}

enum CraftBodyKind: Sendable {
    case json, form, multipart
}

/// One Craft AI request, with what its head said, answered off the event loop.
struct CraftExchange: Sendable {
    var craft: CraftSurface
    var services: FrontendServices
    var requestID: String
    var target: String
    var authorization: String?
    var host: String?
    /// `RESTRequestHead.externalScheme`: `https` over TLS or behind a TLS-terminating proxy.
    var scheme: String
    /// The request's trace context: an execution's run carries it to the backend and webhooks.
    var trace: TraceContext

    func answer(_ route: CraftRoute, body: CraftRequestBody?) async -> RESTResponse {
        do {
            return try await respond(route, body: body)
        } catch {
            return CraftAnswer.error(gatewayError(from: error, requestID: requestID), requestID: requestID)
        }
    }

    private var operations: AsyncOperations {
        get throws {
            guard let operations = services.operations else {
                throw GatewayError(.unimplemented, "executions need async mode, which is not available on this gateway")
            }
            return operations
        }
    }

    private func respond(_ route: CraftRoute, body: CraftRequestBody?) async throws -> RESTResponse {
        let limits = services.limits
        switch route {
        case .refresh:
            return try await refresh(body ?? .json(ByteBuffer()))
        case .pipeline(let name):
            _ = try await craft.principal(authorization: authorization)
            let description = try await knownDescription(of: craft.ref(pipeline: name))
            return CraftAnswer.json(CraftAnswer.pipeline(name: name, description), requestID: requestID)
        case .runPipeline(let name):
            let principal = try await craft.principal(authorization: authorization)
            let run = try (body ?? .form(ByteBuffer())).pipelineRun(limits: limits)
            return try await execute(
                ref: craft.ref(pipeline: name),
                inputs: run.inputs,
                mappings: run.mappings,
                deployment: nil,
                principal: principal
            )
        case .executionOutputs(let id):
            let principal = try await craft.principal(authorization: authorization)
            let waits = (try RESTQuery(target: target))["wait_for_completion"]?.lowercased() == "true"
            guard let operation = try await finishedExecution(id, principal: principal, wait: waits) else {
                return CraftAnswer.stillRunning(id, location: target, requestID: requestID)
            }
            let outputs = try succeededOutputs(operation)
            return CraftAnswer.json(CraftAnswer.executionOutputs(id: id, outputs), requestID: requestID)
        case .executionOutput(let id, let name):
            let principal = try await craft.principal(authorization: authorization)
            guard let operation = try await finishedExecution(id, principal: principal, wait: false) else {
                throw GatewayError(.failedPrecondition, "execution \(id) has not finished yet")
            }
            return try outputValue(
                named: name, of: try succeededOutputs(operation), executionID: id, byEndpointName: false)
        case .deployment(let name):
            _ = try await craft.principal(authorization: authorization)
            let deployment = try await existingDeployment(named: name)
            return CraftAnswer.json(CraftAnswer.deployment(deployment), requestID: requestID)
        case .latestExecution(let name):
            let principal = try await craft.principal(authorization: authorization)
            let deployment = try await existingDeployment(named: name)
            var filter = OperationFilter()
            filter.pipeline = OperationFilter.pipelineKey(craft.ref(pipeline: deployment.pipeline))
            let page = try await operations.list(filter: filter, pageSize: 100, pageToken: nil)
            guard
                let latest = page.operations.first(where: {
                    $0.request.labels[CraftLabels.deployment] == deployment.name
                        && RESTOperations.isVisible($0, to: principal)
                })
            else {
                return RESTResponse(status: 204, headers: [("request-id", requestID)], body: ByteBuffer())
            }
            return CraftAnswer.json(["execution_id": .string(latest.id)], requestID: requestID)
        case .executeDeployment(let name):
            let principal = try await craft.principal(authorization: authorization)
            return try await execute(try await existingDeployment(named: name), body: body, principal: principal)
        case .endpoint(let path):
            let query = try RESTQuery(target: target)
            let principal =
                authorization != nil
                ? try services.authenticator.authenticate(authorization: authorization)
                : try services.authenticator.authenticate(token: query["token"])
            return try await execute(
                try await endpointDeployment(path, principal: principal), body: body, principal: principal)
        case .endpointExecution(let path, let id):
            let principal = try services.authenticator.authenticate(token: try RESTQuery(target: target)["token"])
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
            let principal = try services.authenticator.authenticate(token: try RESTQuery(target: target)["token"])
            let deployment = try await endpointDeployment(path, principal: principal)
            guard
                let operation = try await finishedExecution(
                    id, principal: principal, wait: false, deployment: deployment.name)
            else {
                throw GatewayError(.failedPrecondition, "execution \(id) has not finished yet")
            }
            return try outputValue(
                named: name, of: try succeededOutputs(operation), executionID: id, byEndpointName: true)
        }
    }

    // MARK: Auth

    /// `{"refresh_token": <sdk token>}` → `{"access_token": <jwt>}`. With auth off any SDK token is taken.
    private func refresh(_ body: CraftRequestBody) async throws -> RESTResponse {
        guard case .json(let bytes) = body else {
            throw GatewayError(.unsupportedMediaType, "send {\"refresh_token\": ...} as application/json")
        }
        let object = try JSONValueCodec.decodeObject(bytes, limits: services.limits, what: "request body")
        guard case .string(let token)? = object["refresh_token"], !token.isEmpty else {
            throw GatewayError(.invalidArgument, "the body needs a string \"refresh_token\" (the SDK token)")
        }
        let principal = try services.authenticator.authenticate(token: token)
        let jwt = try await craft.accessTokens.issue(subject: principal ?? CraftAccessTokens.anonymousSubject)
        return CraftAnswer.json(["access_token": .string(jwt)], requestID: requestID)
    }

    // MARK: Deployments

    /// A configured deployment, or (with implicit deployments) the pipeline of that name when it exists.
    private func existingDeployment(named name: String) async throws -> CraftDeploymentConfiguration {
        guard let deployment = craft.configuration.deployment(named: name) else {
            throw GatewayError(.notFound, "deployment \"\(name)\" not found")
        }
        if craft.configuration.deployments == nil {
            try await checkPipelineExists(deployment.pipeline, what: "deployment")
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
    /// pipeline; otherwise its description (`CraftDescriptionCache`). A runner that cannot be asked right now
    /// (down, slow, broken: any error but NOT_FOUND) refuses nothing (README "Unknown pipelines", as Instill's
    /// trigger-async and Abacus' `runPipeline` do): the route table says the pipeline is served, so it is
    /// described as taking any inputs, the SDK goes on, and its execution is stored and run when the runner is
    /// back. That answer is not cached: the next call asks the runner again.
    private func knownDescription(of ref: PipelineRef) async throws -> PipelineDescription {
        _ = try services.dispatcher.pool(for: ref)
        do {
            return try await craft.descriptions.description(of: ref)
        } catch let error as GatewayError where error.code == .notFound {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return PipelineDescription()
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
        if let principal, !deployment.tokens.isEmpty, !deployment.tokens.contains(principal) {
            throw GatewayError(.permissionDenied, "this endpoint token may not trigger the endpoint \"\(path)\"")
        }
        return deployment
    }

    // MARK: Executions

    /// An execution of a deployment: the endpoint's body as its inputs, through the deployment's mappings.
    private func execute(
        _ deployment: CraftDeploymentConfiguration,
        body: CraftRequestBody?,
        principal: String?
    ) async throws -> RESTResponse {
        try await execute(
            ref: craft.ref(pipeline: deployment.pipeline, release: deployment.release),
            inputs: try (body ?? .json(ByteBuffer())).endpointInputs(limits: services.limits),
            mappings: try CraftMappings(deployment: deployment),
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
            requestID: requestID
        )
        request.traceParent = trace.traceParent
        request.traceState = trace.traceState
        // Unknown pipelines are refused now, not after the execution was stored and claimed.
        _ = try services.dispatcher.pool(for: ref)
        if services.health.status(.async) != .serving { throw HealthRegistry.asyncUnavailable }
        let operation = try await operations.submit(request)
        return CraftAnswer.json(["execution_id": .string(operation.id)], requestID: requestID)
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

    /// A finished execution's mapped outputs; its error when it failed; 413 when they are over its cap.
    private func succeededOutputs(_ operation: Operation) throws -> [CraftMappings.MappedOutput] {
        if let error = OperationView.error(operation) { throw error }
        let outputs = operation.result?.outputs.first ?? ValueObject()
        let mappings = try CraftMappings(outputsLabel: operation.request.labels[CraftLabels.outputsMapping])
        let mapped = mappings.mappedOutputs(outputs)
        let limit = operation.request.labels[CraftLabels.ioCap].flatMap(Int.init) ?? craft.configuration.maxIOBytes
        let delivered = ValueObject(
            mapped.compactMap { $0.endpointOutputName == nil ? nil : ($0.pipelineOutputName, $0.value) })
        try CraftIOCap(limit: limit).checkOutputs(delivered)
        return mapped
    }

    /// One output: a file as `application/octet-stream`, anything else as its JSON.
    private func outputValue(
        named name: String,
        of outputs: [CraftMappings.MappedOutput],
        executionID: String,
        byEndpointName: Bool
    ) throws -> RESTResponse {
        guard
            let output = outputs.first(where: {
                $0.endpointOutputName != nil && (byEndpointName ? $0.endpointOutputName : $0.pipelineOutputName) == name
            })
        else {
            throw GatewayError(.notFound, "execution \(executionID) has no output \"\(name)\"")
        }
        if case .blob(let blob) = output.value {
            return RESTResponse(
                status: 200,
                headers: [("content-type", "application/octet-stream"), ("request-id", requestID)],
                body: blob.bytes
            )
        }
        return RESTResponse.json(status: 200, body: JSONValueCodec.encode(output.value), requestID: requestID)
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
            // The google.rpc name (`NOT_FOUND`, `INTERNAL`): what the SDK prints in brackets before the message.
            "name": .string(
                GatewayError.Code.rpcCodeNames.indices.contains(error.code.rpcCode)
                    ? GatewayError.Code.rpcCodeNames[error.code.rpcCode] : "UNKNOWN"),
            "request_id": .string(requestID),
        ]
        var response = RESTResponse.json(
            status: error.code.httpStatus, body: JSONValueCodec.encode(.object(object)), requestID: requestID)
        if error.code == .unauthenticated { response.headers.append(("www-authenticate", "Bearer")) }
        if error.code.httpStatus == 503 || error.code == .tooManyRequests {
            response.headers.append(("retry-after", "1"))
        }
        return response
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

    /// `GET /api/v1/pipelines/{name}`: `parameters.inputs[]` with `name` and `data_type` (what the SDK reads).
    static func pipeline(name: String, _ description: PipelineDescription) -> ValueObject {
        func list(_ parameters: [PipelineDescription.Parameter]) -> Value {
            .list(parameters.map { .object(["name": .string($0.name), "data_type": .string($0.dataType)]) })
        }
        return [
            "name": .string(name),
            "parameters": .object(["inputs": list(description.inputs), "outputs": list(description.outputs)]),
        ]
    }

    /// `GET /api/v1/deployments/{name}`: the SDK reads `execution_rule` (`trigger_endpoint` needs `endpoint`)
    /// and `endpoint_url_path` (CLIENTS.md §3.5). A periodic deployment has no endpoint path; it shows its
    /// cron expression as `schedule` (Craft AI's field), with the zone and the schedule's name under
    /// `/v1beta/schedules`.
    static func deployment(_ deployment: CraftDeploymentConfiguration) -> ValueObject {
        var pipeline: ValueObject = ["name": .string(deployment.pipeline)]
        if let release = deployment.release { pipeline["release"] = .string(release) }
        var object: ValueObject = [
            "name": .string(deployment.name),
            "pipeline": .object(pipeline),
            "execution_rule": .string(deployment.executionRule.rawValue),
            "mode": .string("elastic"),
            "is_enabled": .bool(true),
        ]
        if let path = deployment.endpointURLPath { object["endpoint_url_path"] = .string(path) }
        if let schedule = deployment.schedule {
            object["schedule"] = .string(schedule.cron.text)
            object["timezone"] = .string(schedule.timeZoneName)
            object["schedule_name"] = .string(schedule.name)
        }
        return object
    }

    /// Craft AI's data type of a value.
    static func dataType(_ value: Value) -> String {
        switch value {
        case .blob: "file"
        case .string: "string"
        case .number: "number"
        case .bool: "boolean"
        case .list: "array"
        case .object, .null: "json"
        }
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
                o["endpoint_output_name"] = .string(name)
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
