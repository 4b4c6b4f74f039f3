import AsyncDispatch
import GatewayConfig
import NIOCore
import OperationStore
import Routing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// The REST side of async mode (API.md §2): accepting `trigger-async`, and the operation endpoints
/// `GET /v1beta/operations/{id}[?wait=30s]`, `POST /v1beta/operations/{id}:cancel` and
/// `GET /v1beta/operations?pipeline=ns/p&state=&page_size=&page_token=`.
///
/// An operation is visible only to the principal that created it (a caller without one sees only operations
/// made without one; a schedule's runs every caller): `Operation.isVisible(to:)`. Another gets 404, as for an
/// id that does not exist. Cancelling also needs `Operation.checkMayCancel`: a schedule's run only its operators
/// may cancel (403 otherwise).
extension RESTRequestHead {
    /// `principal` is set to the authenticated caller (for the request's record).
    func operationStart(
        _ path: RESTPath, services: FrontendServices, requestID: String, principal recorded: inout String?
    ) -> RESTStart {
        func fail(_ error: GatewayError) -> RESTStart {
            .respond(.error(error, requestID: requestID), closeConnection: false)
        }
        guard let operations = services.operations else {
            return fail(GatewayError(.unimplemented, "async operations are not available on this gateway"))
        }
        let principal: String?
        do {
            principal = try services.authenticator.authenticate(authorization: first("authorization"))
        } catch {
            return fail(gatewayError(from: error))
        }
        recorded = principal
        let query: RESTQuery
        do {
            query = try RESTQuery(target: target)
        } catch {
            return fail(gatewayError(from: error))
        }
        switch path {
        case .operation(let id):
            let wait: Duration
            if let text = query["wait"] {
                // Capped at `store.max_wait` by the long poll, so any longer duration only asks for the longest.
                guard let parsed = ConfigUnits.parseDurationCapped(text) else {
                    return fail(
                        GatewayError(.invalidArgument, "invalid wait \"\(text)\": expected a duration such as 30s"))
                }
                wait = parsed
            } else {
                wait = .zero
            }
            return .run(
                RESTWork(requestID: requestID) {
                    await RESTOperations.answer(requestID: requestID, id: id) {
                        // A long poll is refused before it waits: waited on first, another principal's
                        // operation told when it ended, by when the 404 came (security review, I1).
                        if wait > .zero {
                            guard let existing = try await operations.store.get(id: id) else {
                                throw OperationStoreErrors.notFound(id)
                            }
                            try RESTOperations.checkVisible(existing, to: principal)
                        }
                        let operation = try await operations.get(id: id, wait: wait)
                        try RESTOperations.checkVisible(operation, to: principal)
                        return operation
                    }
                })
        case .cancelOperation(let id):
            let authRequired = services.authenticator.authRequired
            let scheduler = services.scheduler
            return .run(
                RESTWork(requestID: requestID) {
                    await RESTOperations.answer(requestID: requestID, id: id) {
                        guard let existing = try await operations.store.get(id: id) else {
                            throw OperationStoreErrors.notFound(id)
                        }
                        try RESTOperations.checkMayCancel(
                            existing, principal: principal, authRequired: authRequired, scheduler: scheduler)
                        return try await operations.cancel(id: id)
                    }
                })
        case .listOperations:
            if let refusal = RESTOperations.checkListParameters(query) { return fail(refusal) }
            var filter = OperationFilter()
            var pageSize = 0
            if let pipeline = query["pipeline"], !pipeline.isEmpty {
                let parts = pipeline.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    return fail(OperationStoreErrors.invalidFilter(pipeline))
                }
                // The filter is an exact match: a `*` would silently match nothing.
                guard !pipeline.contains("*") else {
                    return fail(
                        GatewayError(
                            .invalidArgument,
                            "invalid pipeline filter \"\(pipeline)\": wildcards are not supported; "
                                + "name one namespace/pipeline, or leave pipeline out for all"))
                }
                filter.pipeline = pipeline
            }
            if let state = query["state"], !state.isEmpty {
                var name = state.lowercased()
                if name.hasPrefix("state_") { name.removeFirst("state_".count) }
                guard let parsed = OperationState(rawValue: name) else {
                    let names = OperationState.allCases.map(\.rawValue).joined(separator: ", ")
                    return fail(GatewayError(.invalidArgument, "invalid state \"\(state)\"; expected one of: \(names)"))
                }
                filter.state = parsed
            }
            if let size = query["page_size"] ?? query["pageSize"], !size.isEmpty {
                guard let parsed = Int(size), parsed >= 0 else {
                    return fail(GatewayError(.invalidArgument, "invalid page_size \"\(size)\": expected a number ≥ 0"))
                }
                pageSize = parsed
            }
            let token = query["page_token"] ?? query["pageToken"]
            let pageToken = token?.isEmpty == true ? nil : token
            return .run(
                RESTWork(requestID: requestID) { [filter, pageSize] in
                    do {
                        let page = try await operations.list(filter: filter, pageSize: pageSize, pageToken: pageToken)
                        var body = ByteBufferAllocator().buffer(capacity: 256 * max(page.operations.count, 1))
                        body.writeStaticString("{\"operations\":[")
                        var first = true
                        for operation in page.operations where RESTOperations.isVisible(operation, to: principal) {
                            if !first { body.writeInteger(UInt8(ascii: ",")) }
                            first = false
                            RESTOperationBody(operation).write(into: &body)
                        }
                        body.writeStaticString("],\"nextPageToken\":")
                        JSONValueCodec.writeString(page.nextPageToken ?? "", into: &body)
                        body.writeInteger(UInt8(ascii: "}"))
                        return .json(status: 200, body: body, requestID: requestID)
                    } catch {
                        return .error(gatewayError(from: error, requestID: requestID), requestID: requestID)
                    }
                })
        default:
            return fail(GatewayError(.notFound, "no endpoint at \(method) \(pathOnly)"))
        }
    }
}

/// Running a REST trigger once its body is read: sync (the backend's outputs) or async (an operation).
enum RESTOperations {
    /// The query parameters `GET /v1beta/operations` reads, each in both spellings where it has two.
    static let listParameters: [[String]] = [
        ["pipeline"], ["state"], ["page_size", "pageSize"], ["page_token", "pageToken"],
    ]

    /// Refuses a list query the gateway would otherwise answer as if it were not filtered (review 8): an
    /// unknown parameter (an AIP-160 `filter=` expression, a typo), and a parameter given twice or in both its
    /// spellings (`state=queued&state=running`: one filter value each; this list takes one). Nil when fine.
    static func checkListParameters(_ query: RESTQuery) -> GatewayError? {
        let known = listParameters.flatMap { $0 }
        if let unknown = query.names.first(where: { !known.contains($0) }) {
            let hint = unknown == "filter" ? "filter expressions are not supported; " : ""
            return GatewayError(
                .invalidArgument,
                "unknown query parameter \"\(unknown)\" on the operations list: \(hint)"
                    + "it takes pipeline=<namespace>/<pipeline>, state=<state>, page_size and page_token")
        }
        for spellings in listParameters {
            let given = query.names.filter { spellings.contains($0) }
            if given.count > 1 {
                // A filter's values each need a list of their own; a page parameter simply has one value.
                let hint =
                    ["pipeline", "state"].contains(spellings[0]) ? " (list each \(spellings[0]) separately)" : ""
                return GatewayError(
                    .invalidArgument,
                    "query parameter \"\(spellings[0])\" is given \(given.count) times; the operations list takes "
                        + "one value\(hint)")
            }
        }
        return nil
    }

    /// What the frontends call when a trigger's body is complete (sync and async; streams go elsewhere).
    static func run(_ request: TriggerRequest, services: FrontendServices) async -> RESTResponse {
        if request.mode == .async {
            guard let operations = services.operations else {
                return .error(
                    GatewayError(.unimplemented, "async triggers are not available on this gateway"),
                    requestID: request.requestID)
            }
            return await answer(requestID: request.requestID) {
                // Unknown pipelines are refused now, not after the operation was stored and claimed; a keyed
                // request asks only the route table, so its retry gets the operation stored under its key.
                try await services.dispatcher.checkAsyncTarget(request.ref, askRunner: request.idempotencyKey == nil)
                return try await operations.submit(request)
            }
        }
        do {
            return .result(try await services.dispatcher.runSync(request), requestID: request.requestID)
        } catch {
            return .error(gatewayError(from: error, requestID: request.requestID), requestID: request.requestID)
        }
    }

    /// A sync trigger's answer: the outputs (200), or the error in REST's shape.
    static func response(to outcome: Result<TriggerResult, GatewayError>, requestID: String) -> RESTResponse {
        switch outcome {
        case .success(let result): .result(result, requestID: requestID)
        case .failure(let error): .error(error, requestID: requestID)
        }
    }

    /// `{"operation": <operation>}`, or the error `body` threw. The request's record is named with the operation's
    /// id (`operation.id` on the access line, review 26 H2), or with `id`, the one the request asked for, when
    /// `body` failed (an unknown id's 404 names it too).
    static func answer(requestID: String, id: String? = nil, _ body: () async throws -> Operation) async
        -> RESTResponse
    {
        var response: RESTResponse
        do {
            let operation = try await body()
            var buffer = ByteBufferAllocator().buffer(capacity: 512)
            RESTOperationBody(operation).writeEnvelope(into: &buffer)
            response = .json(status: 200, body: buffer, requestID: requestID)
            response.naming = .operation(operation.id)
        } catch {
            response = .error(gatewayError(from: error, requestID: requestID), requestID: requestID)
            response.naming = .operation(id)
        }
        return response
    }

    /// `Operation.isVisible(to:)`, the one rule.
    static func isVisible(_ operation: Operation, to principal: String?) -> Bool {
        operation.isVisible(to: principal)
    }

    static func checkVisible(_ operation: Operation, to principal: String?) throws {
        guard isVisible(operation, to: principal) else { throw OperationStoreErrors.notFound(operation.id) }
    }

    /// `Operation.checkMayCancel`, the one rule of every cancel and delete path (404 for an operation the caller
    /// may not see, 403 for a schedule's run it may not stop), with the schedules configured now.
    static func checkMayCancel(
        _ operation: Operation, principal: String?, authRequired: Bool, scheduler: Scheduler?
    ) throws {
        try operation.checkMayCancel(
            principal: principal, authRequired: authRequired, schedules: scheduler?.configured ?? [])
    }
}

/// A request target's query parameters, percent-decoded (`+` is a space, as forms send it).
struct RESTQuery {
    /// Each parameter's decoded name and value, and its value as sent (for ``credential(_:)``).
    private var items: [(name: String, value: String, sent: Substring)] = []

    init(target: String) throws {
        guard let mark = target.firstIndex(of: "?") else { return }
        for pair in target[target.index(after: mark)...].split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try Self.decode(parts[0])
            let sent = parts.count > 1 ? parts[1] : ""
            items.append((name, try Self.decode(sent), sent))
        }
    }

    subscript(name: String) -> String? { items.first { $0.name == name }?.value }

    /// A credential parameter (a Craft AI endpoint's `token`): percent-escapes decoded, but a `+` is itself, not a
    /// space. craft-ai-sdk appends the token to a file output's `url` as it is (`?token={endpoint_token}`,
    /// `core/endpoints.py`), where its result read URL-encodes it: a base64 token's `+` arrived as a space, and the
    /// file download was 401 after the run succeeded. A configured token never holds a space (`tokens[].token`
    /// refuses one), so a `+` can only be the token's own, and an encoded one (`%2B`) still decodes to it.
    /// Never fails: ``init(target:)`` decoded the same bytes strictly already (a malformed escape is refused there).
    func credential(_ name: String) -> String? {
        guard let sent = items.first(where: { $0.name == name })?.sent else { return nil }
        return PercentDecoding.decodeStrictly(sent.utf8, plusAsSpace: false) ?? String(sent)
    }

    /// A boolean parameter: nil when absent or empty; `true` or `false` in any case (craft-ai-sdk's `requests`
    /// sends Python's `True`/`False`; grpc-gateway's `strconv.ParseBool` takes `True` too).
    ///
    /// - Throws: `GatewayError(.invalidArgument)` naming the parameter and the value, for any other value (a
    ///   value that is neither must not quietly mean one of them).
    func boolean(_ name: String) throws(GatewayError) -> Bool? {
        guard let text = self[name], !text.isEmpty else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default: throw GatewayError(.invalidArgument, "invalid \(name) \"\(text)\": expected true or false")
        }
    }

    /// The parameter names in order, repeats included.
    var names: [String] { items.map(\.name) }

    private static func decode(_ text: Substring) throws -> String {
        guard let decoded = PercentDecoding.decodeStrictly(text.utf8, plusAsSpace: true) else {
            throw GatewayError(.invalidArgument, "malformed percent-escape in the query string")
        }
        return decoded
    }
}
