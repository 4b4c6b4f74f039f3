import AbacusSurface
import Foundation
@testable import GatewayServer
import ProtoCodec
import Testing
import TriggerModel

/// What the discovery documents promise matches what the router serves: the gRPC methods reflection
/// advertises are the ones `GRPCCall` dispatches, and the OpenAPI document's paths are the REST routes.
@Suite("Discovery documents match the routers")
struct DiscoveryConsistencyTests {
    @Test("every method reflection advertises is dispatched; the backends' Runner is neither")
    func reflectionMatchesDispatch() {
        let paths = GRPCReflectionIndex.gateway.methodPaths
        // grpc.health (2), reflection (2), mgmt (5), pipeline.pipeline.v1beta (13: ListNamespacePipelines and
        // ListPipelineRuns too),
        // vdp.pipeline.v1beta (11), pipeline.v1beta (11).
        #expect(paths.count == 44, "\(paths)")
        for path in paths {
            #expect(GRPCCall.method(path: path) != nil, "advertised but not dispatched: \(path)")
        }
        #expect(GRPCCall.method(path: "/trigger.runner.v1.Runner/Run") == nil)
        #expect(!paths.contains("/trigger.runner.v1.Runner/Run"))
    }

    static var document: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(openAPIDocumentJSON.utf8))) as? [String: Any] ?? [:]
    }

    static var documentedPaths: [String: [String: Any]] {
        document["paths"] as? [String: [String: Any]] ?? [:]
    }

    /// `template` with its parameters filled: every `{ns-kind}` spelling, and a plain value for the rest.
    static func targets(_ template: String) -> [String] {
        var filled = [template]
        if template.contains("{nsKind}") {
            filled = ["namespaces", "namespace", "users", "organizations"].map {
                template.replacingOccurrences(of: "{nsKind}", with: $0)
            }
        }
        return filled.map { target in
            var target = target
            while let open = target.firstIndex(of: "{"), let close = target[open...].firstIndex(of: "}") {
                target.replaceSubrange(open...close, with: "x1")
            }
            return target
        }
    }

    @Test("each documented path is a route, and each documented method is allowed on it")
    func documentedPathsAreRoutes() throws {
        #expect(Self.document["openapi"] as? String == "3.1.0")
        #expect(Self.documentedPaths.count > 20)
        for (template, item) in Self.documentedPaths {
            for target in Self.targets(template) {
                let path = try RESTPath.parse(target)
                #expect(path != nil, "documented but not routed: \(target)")
                let methods = item.keys.filter { ["get", "post", "put", "delete", "patch", "head"].contains($0) }
                for method in methods {
                    #expect(path?.allowedMethods.contains(method.uppercased()) == true, "\(method) \(target)")
                }
                // `allows` (the routing check, no array) agrees with `allowedMethods` for every method.
                for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"] {
                    #expect(path?.allows(method) == path?.allowedMethods.contains(method), "\(method) \(target)")
                }
            }
        }
    }

    /// The kind of route a parsed path is. Exhaustive on purpose: a new `RESTPath` case does not compile
    /// here until it is given a sample below, which the next test then requires the document to describe.
    static func kind(_ path: RESTPath) -> String {
        switch path {
        case .trigger(let ref, let kind): "trigger \(kind) release=\(ref.release != nil)"
        case .pipeline(let ref): "pipeline release=\(ref.release != nil)"
        case .pipelineReleases: "pipelineReleases"
        case .pipelines: "pipelines"
        case .pipelineRuns: "pipelineRuns"
        case .operation: "operation"
        case .cancelOperation: "cancelOperation"
        case .listOperations: "listOperations"
        case .listSchedules: "listSchedules"
        case .scheduleAction(_, let action): "schedule \(action)"
        case .liveness: "liveness"
        case .readiness: "readiness"
        case .metrics: "metrics"
        case .openAPI: "openAPI"
        case .abacus(let action): "abacus \(action)"
        case .craft(let route): "craft \(Self.craftKind(route))"
        }
    }

    static func craftKind(_ route: CraftRoute) -> String {
        switch route {
        case .refresh: "refresh"
        case .pipelines: "pipelines"
        case .pipeline: "pipeline"
        case .pipelineLogs: "pipelineLogs"
        case .deploymentLogs: "deploymentLogs"
        case .pipelineExecutions: "pipelineExecutions"
        case .latestPipelineExecution: "latestPipelineExecution"
        case .execution: "execution"
        case .executionInput: "executionInput"
        case .runPipeline: "runPipeline"
        case .executionOutputs: "executionOutputs"
        case .executionOutput: "executionOutput"
        case .deployment: "deployment"
        case .deployments: "deployments"
        case .createDeployment(let rule): "createDeployment \(rule)"
        case .executionLogs: "executionLogs"
        case .latestExecution: "latestExecution"
        case .executeDeployment: "executeDeployment"
        case .endpoint: "endpoint"
        case .endpointExecution: "endpointExecution"
        case .endpointOutput: "endpointOutput"
        }
    }

    static let routedSamples =
        [
            "/v1beta/namespaces/demo/pipelines/echo/trigger", "/v1beta/users/demo/pipelines/echo/trigger-stream",
            "/v1beta/organizations/demo/pipelines/echo/trigger-async",
            "/v1beta/namespace/demo/pipelines/echo/triggerAsync",
            "/v1beta/namespaces/demo/pipelines/echo/releases/v1/trigger",
            "/v1beta/namespaces/demo/pipelines/echo/releases/v1/trigger-stream",
            "/v1beta/namespaces/demo/pipelines/echo/releases/v1/trigger-async",
            "/v1beta/namespaces/demo/pipelines/echo", "/v1beta/users/demo/pipelines/echo/releases/v1",
            "/v1beta/organizations/demo/pipelines/echo/releases",
            "/v1beta/namespaces/demo/pipelines", "/v1beta/namespaces/demo/pipelines/echo/runs",
            "/v1beta/operations/abc", "/v1beta/operations/abc:cancel", "/v1beta/operations",
            "/v1beta/schedules", "/v1beta/schedules/n:pause", "/v1beta/schedules/n:resume",
            "/v1beta/schedules/n:trigger",
            "/healthz", "/v1beta/__liveness", "/readyz", "/v1beta/__readiness", "/metrics", "/openapi.json",
            "/api/v1/auth/refresh", "/api/v1/pipelines", "/api/v1/pipelines/p", "/api/v1/pipelines/p/run",
            "/api/v1/pipelines/p/executions", "/api/v1/pipelines/p/executions/latest", "/api/v1/executions/e",
            "/api/v1/executions/e/inputs/i", "/api/v1/executions/e/outputs",
            "/api/v1/executions/e/outputs/o", "/api/v1/executions/e/logs", "/api/v1/pipelines/p/logs",
            "/api/v1/deployments/d/logs", "/api/v1/deployments",
            "/api/v1/endpoints", "/api/v1/periodic-deployment", "/api/v1/deployments/d",
            "/api/v1/deployments/d/executions/latest",
            "/api/v1/deployments/d/executions", "/endpoints/d", "/endpoints/v1/d/executions/e",
            "/endpoints/v1/d/executions/e/outputs/o",
        ] + AbacusAPI.Action.allCases.map { "/api/v0/\($0.rawValue)" }

    @Test("every kind of route is documented")
    func routesAreDocumented() throws {
        let documentedTargets = Self.documentedPaths.keys.flatMap(Self.targets)
        let documentedKinds = Set(try documentedTargets.compactMap { try RESTPath.parse($0) }.map(Self.kind))
        for sample in Self.routedSamples {
            let path = try #require(try RESTPath.parse(sample), "not a route: \(sample)")
            #expect(documentedKinds.contains(Self.kind(path)), "routed but not documented: \(sample)")
        }
    }

    /// The request records name REST requests by the document's `operationId` (`RequestRecord.operation`, a
    /// metric label): each documented operation's route and method give exactly its id.
    @Test("each documented operation's route names it by its operationId")
    func operationIDsMatchTheDocument() throws {
        var seen = Set<String>()
        for (template, item) in Self.documentedPaths {
            for (method, operation) in item {
                guard let operation = operation as? [String: Any], let id = operation["operationId"] as? String
                else { continue }
                seen.insert(id)
                for target in Self.targets(template) {
                    let path = try #require(try RESTPath.parse(target))
                    #expect(path.operationID(method: method.uppercased(), target: target) == id, "\(method) \(target)")
                }
            }
        }
        #expect(seen.count > 40)
        let unknown = try #require(try RESTPath.parse("/api/v0/noSuchAction"))
        #expect(unknown.operationID(method: "POST", target: "/api/v0/noSuchAction") == "unmatched")
        // HEAD is named as the GET it is answered like.
        let health = try #require(try RESTPath.parse("/healthz"))
        #expect(health.operationID(method: "HEAD", target: "/healthz") == "liveness")
    }

    @Test("trace ids are read from valid traceparent values only (W3C Trace Context §3.2)")
    func traceParentParsing() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736"
        #expect(TraceParent.traceID(of: "00-\(id)-00f067aa0ba902b7-01") == id)
        #expect(TraceParent.traceID(of: "01-\(id)-00f067aa0ba902b7-01-more") == id)  // a later version's extra field
        #expect(TraceParent.traceID(of: "00-\(id)-00f067aa0ba902b7-01-more") == nil)  // version 00 is exact
        #expect(TraceParent.traceID(of: "ff-\(id)-00f067aa0ba902b7-01") == nil)
        #expect(TraceParent.traceID(of: "00-00000000000000000000000000000000-00f067aa0ba902b7-01") == nil)
        #expect(TraceParent.traceID(of: "00-\(id)-0000000000000000-01") == nil)
        #expect(TraceParent.traceID(of: "00-\(id.uppercased())-00f067aa0ba902b7-01") == nil)
        #expect(TraceParent.traceID(of: "00-\(id)-00f067aa0ba902b7") == nil)
        #expect(TraceParent.traceID(of: "") == nil)
    }
}
