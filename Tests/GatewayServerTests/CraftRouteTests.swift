import GatewayConfig
@testable import GatewayServer
import Testing

/// The Craft AI surface's routes as parsed from a request path (CLIENTS.md §3 and the reads craft-ai-sdk 0.74.7's
/// `get_pipeline`, `list_pipelines`, `list_pipeline_executions` and `get_pipeline_execution*` send).
@Suite("Craft AI routes")
struct CraftRouteTests {
    static func route(_ target: String) throws -> CraftRoute? {
        guard case .craft(let route)? = try RESTPath.parse(target) else { return nil }
        return route
    }

    @Test(
        "each SDK read parses to its route",
        arguments: [
            ("/api/v1/pipelines", CraftRoute.pipelines),
            ("/api/v1/pipelines/p", .pipeline(name: "p")),
            ("/api/v1/pipelines/p/executions", .pipelineExecutions(name: "p")),
            ("/api/v1/pipelines/p/executions/latest", .latestPipelineExecution(name: "p")),
            ("/api/v1/executions/e", .execution(id: "e")),
            ("/api/v1/executions/e?include_io_values=false", .execution(id: "e")),
            ("/api/v1/executions/e/inputs/i", .executionInput(id: "e", name: "i")),
            ("/api/v1/executions/e/outputs/o", .executionOutput(id: "e", name: "o")),
            ("/api/v1/pipelines/a%20b/executions", .pipelineExecutions(name: "a b")),
        ])
    func parses(target: String, expected: CraftRoute) throws {
        #expect(try Self.route(target) == expected)
        // `delete_pipeline` (refused) and `delete_pipeline_execution` (a delete, or a cancel) also DELETE a pipeline or an execution;
        // `create_pipeline` (refused, its upload unread) POSTs to the list.
        let deletable = [CraftRoute.pipeline(name: "p"), .execution(id: "e")].contains(expected)
        let extra = deletable ? ["DELETE"] : expected == .pipelines ? ["POST"] : []
        #expect(expected.allowedMethods == ["GET", "HEAD"] + extra)
        #expect(!expected.readsBody(method: "GET") && !expected.readsBody(method: "DELETE"))
        #expect(!expected.readsBody(method: "POST") || expected != .pipelines)
    }

    @Test(
        "the deployment calls and execution logs parse to their routes, with their methods",
        arguments: [
            ("/api/v1/deployments", CraftRoute.deployments, ["GET", "HEAD"], false),
            ("/api/v1/endpoints", .createDeployment(rule: .endpoint), ["POST"], true),
            ("/api/v1/periodic-deployment", .createDeployment(rule: .periodic), ["POST"], true),
            (
                "/api/v1/deployments/d?wait_for_completion=true", .deployment(name: "d"),
                ["GET", "HEAD", "DELETE", "PATCH"], false
            ),
            ("/api/v1/executions/e/logs", .executionLogs(id: "e"), ["POST"], true),
            ("/api/v1/pipelines/p/logs", .pipelineLogs(name: "p"), ["POST"], true),
            ("/api/v1/deployments/d/logs", .deploymentLogs(name: "d"), ["POST"], true),
        ])
    func deploymentRoutes(target: String, expected: CraftRoute, methods: [String], readsBody: Bool) throws {
        #expect(try Self.route(target) == expected)
        #expect(expected.allowedMethods == methods)
        #expect(expected.readsBody(method: methods[0]) == readsBody)
    }

    @Test("update_deployment's PATCH body is read (to be refused whole); no other method on a deployment reads one")
    func deploymentPatchReadsBody() {
        let deployment = CraftRoute.deployment(name: "d")
        #expect(deployment.readsBody(method: "PATCH"))
        #expect(!deployment.readsBody(method: "GET") && !deployment.readsBody(method: "DELETE"))
    }

    @Test(
        "near misses are no Craft route",
        arguments: [
            "/api/v1/pipelines/", "/api/v1/pipelines/p/executions/other", "/api/v1/executions",
            "/api/v1/executions/e/inputs", "/api/v1/executions/e/other/i", "/api/v1/pipelines/p/executions/latest/x",
            "/api/v1/periodic-deployments", "/api/v1/endpoint", "/api/v1/executions/e/logs/x",
        ])
    func nearMisses(target: String) throws {
        #expect(try Self.route(target) == nil, "\(target)")
    }
}
