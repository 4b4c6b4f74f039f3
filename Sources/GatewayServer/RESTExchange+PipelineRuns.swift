import AsyncDispatch
import NIOCore
import Routing
import TriggerDispatch
import TriggerModel
import WireCodecs

/// `GET /v1beta/{ns-kind}/{ns}/pipelines/{pipeline}/runs`: Instill's `ListPipelineRuns` over REST (its
/// grpc-gateway binding is `/v1beta/namespaces/{namespace_id}/pipelines/{pipeline_id}/runs`).
extension RESTRequestHead {
    /// The query parameters of the runs list, each in both its spellings (grpc-gateway takes either).
    static let runListParameters: [[String]] = [
        ["page"], ["page_size", "pageSize"], ["filter"], ["order_by", "orderBy"],
    ]

    /// A page of the pipeline's stored runs the caller may see (``PipelineRuns``), as protobuf JSON:
    /// `{"pipelineRuns": [...], "totalSize", "page", "pageSize"}` (the page fields always present; a run's empty
    /// fields left out). 400 for an unknown or repeated parameter, a `page` or `page_size` that is not an int32,
    /// and ``PipelineRunQuery``'s refusals; 404 for a pipeline no route matches (Instill's NOT_FOUND for a pipeline
    /// that does not exist); 501 on a gateway without async operations.
    func pipelineRunsStart(
        _ ref: PipelineRef, services: FrontendServices, requestID: String, principal recorded: inout String?
    ) -> RESTStart {
        func fail(_ error: any Error) -> RESTStart {
            .respond(.error(gatewayError(from: error), requestID: requestID), closeConnection: false)
        }
        guard let operations = services.operations else {
            return fail(GatewayError(.unimplemented, "async operations are not available on this gateway"))
        }
        let principal: String?
        // The requester uids a run was triggered with, named as namespaces (the directory of this generation).
        let namespaces = services.namespaces
        let runQuery: PipelineRunQuery
        do {
            principal = try services.authenticator.authenticate(authorization: first("authorization"))
            recorded = principal
            let query = try RESTQuery(target: target)
            let pageSize = try Self.pageQuery(query, list: "runs", parameters: Self.runListParameters)
            var page = 0
            if let text = query["page"], !text.isEmpty {
                guard let parsed = Int32(text) else {
                    throw GatewayError(
                        .invalidArgument, "invalid page \"\(text)\": expected a whole number (int32, as page is)")
                }
                page = Int(parsed)
            }
            runQuery = try PipelineRunQuery(
                ref: ref, page: page, pageSize: pageSize, filter: query["filter"] ?? "",
                orderBy: query["order_by"] ?? query["orderBy"] ?? "")
            // Instill answers NOT_FOUND for the runs of a pipeline that does not exist; here, one no route matches
            // (what a trigger of it is answered), checked after authentication so that it tells nothing to a
            // caller without a valid token.
            guard services.dispatcher.target(for: ref) != nil else { throw TriggerDispatcher.notFound(ref) }
        } catch {
            return fail(error)
        }
        return .run(
            RESTWork(requestID: requestID) {
                do {
                    let page = try await operations.pipelineRuns(runQuery, visibleTo: principal) {
                        namespaces.namespace(uid: $0)?.id
                    }
                    var body = ByteBufferAllocator().buffer(capacity: 128 + 512 * page.runs.count)
                    JSONValueCodec.write(Self.json(page), into: &body)
                    return .json(status: 200, body: body, requestID: requestID)
                } catch {
                    return .error(gatewayError(from: error, requestID: requestID), requestID: requestID)
                }
            })
    }

    /// Instill's JSON rendering of a runs page (protobuf JSON: lowerCamelCase, enums by name, timestamps as RFC
    /// 3339, a run's empty fields left out).
    static func json(_ page: PipelineRunPage) -> ValueObject {
        ValueObject([
            ("pipelineRuns", .list(page.runs.map { .object(json($0)) })),
            ("totalSize", .number(Double(page.totalSize))),
            ("page", .number(Double(page.page))),
            ("pageSize", .number(Double(page.pageSize))),
        ])
    }

    static func json(_ run: PipelineRun) -> ValueObject {
        var o = ValueObject([
            ("pipelineRunUid", .string(run.uid)),
            ("pipelineVersion", .string(run.pipelineVersion)),
            ("status", .string(run.status.name)),
            ("source", .string("RUN_SOURCE_API")),
        ])
        if let duration = run.totalDurationMilliseconds, duration != 0 {
            o["totalDuration"] = .number(Double(duration))
        }
        if !run.runner.isEmpty { o["runnerId"] = .string(run.runner) }
        if !run.inputs.isEmpty { o["inputs"] = .list(run.inputs.map { .object($0) }) }
        if !run.outputs.isEmpty { o["outputs"] = .list(run.outputs.map { .object($0) }) }
        o["startTime"] = .string(RFC3339.format(milliseconds: run.startTime))
        if let complete = run.completeTime { o["completeTime"] = .string(RFC3339.format(milliseconds: complete)) }
        if !run.error.isEmpty { o["error"] = .string(run.error) }
        o["pipelineId"] = .string(run.ref.pipeline)
        if !run.requester.isEmpty { o["requesterId"] = .string(run.requester) }
        o["pipelineNamespaceId"] = .string(run.ref.namespace)
        return o
    }
}
