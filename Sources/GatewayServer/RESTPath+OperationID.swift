import GatewayConfig
import TriggerModel

extension RESTPath {
    /// The OpenAPI `operationId` (openapi/openapi.json) of this route under `method`: the bounded `operation`
    /// of the request's record (`RequestRecord.operation`). Static strings, so naming a request allocates
    /// nothing. `target` is the request-target; its path (no query) is cut only for the routes that need it (a sync
    /// trigger does not: ~700 instructions per REST call): `trigger-async` and `triggerAsync` are one route with
    /// two operations. "unmatched" for an Abacus action the surface does not have. The target itself, not an
    /// autoclosure: one that read the head's path captured a copy of the whole head (its strings retained and
    /// released, issue 11).
    func operationID(method: String, target: String) -> String {
        func path() -> Substring { RESTPath.pathPart(of: target) }
        let get = method == "GET" || method == "HEAD"
        switch self {
        case .trigger(let ref, let kind):
            let release = ref.release != nil
            switch kind {
            case .trigger: return release ? "triggerPipelineRelease" : "triggerPipeline"
            case .stream: return release ? "triggerPipelineReleaseStream" : "triggerPipelineStream"
            case .async:
                let camel = path().hasSuffix("triggerAsync")
                switch (release, camel) {
                case (false, false): return "triggerPipelineAsync"
                case (false, true): return "triggerPipelineAsyncCamel"
                case (true, false): return "triggerPipelineReleaseAsync"
                case (true, true): return "triggerPipelineReleaseAsyncCamel"
                }
            }
        case .pipeline(let ref): return ref.release != nil ? "getNamespacePipelineRelease" : "getNamespacePipeline"
        case .pipelineReleases: return "listNamespacePipelineReleases"
        case .pipelines: return "listNamespacePipelines"
        case .pipelineRuns: return "listPipelineRuns"
        case .operation: return "getOperation"
        case .cancelOperation: return "cancelOperation"
        case .listOperations: return "listOperations"
        case .listSchedules: return "listSchedules"
        case .scheduleAction(_, let action):
            switch action {
            case .pause: return "pauseSchedule"
            case .resume: return "resumeSchedule"
            case .trigger: return "triggerSchedule"
            }
        case .liveness: return path() == "/healthz" ? "liveness" : "instillLiveness"
        case .readiness: return path() == "/readyz" ? "readiness" : "instillReadiness"
        case .metrics: return "metrics"
        case .openAPI: return "openAPIDocument"
        case .abacus(let action):
            return Self.abacusOperations[get ? "GET " + action : "POST " + action] ?? Self.unmatched
        case .craft(let route):
            switch route {
            case .refresh: return "craftRefresh"
            case .pipelines: return method == "POST" ? "craftCreatePipeline" : "craftListPipelines"
            case .pipeline: return method == "DELETE" ? "craftDeletePipeline" : "craftGetPipeline"
            case .pipelineLogs: return "craftPipelineLogs"
            case .deploymentLogs: return "craftDeploymentLogs"
            case .pipelineExecutions: return "craftListPipelineExecutions"
            case .latestPipelineExecution: return "craftLatestPipelineExecution"
            case .execution: return method == "DELETE" ? "craftDeleteExecution" : "craftGetExecution"
            case .executionInput: return "craftExecutionInput"
            case .runPipeline: return "craftRunPipeline"
            case .executionOutputs: return "craftExecutionOutputs"
            case .executionOutput: return "craftExecutionOutput"
            case .deployments: return "craftListDeployments"
            case .createDeployment(.endpoint): return "craftCreateEndpointDeployment"
            case .createDeployment(.periodic): return "craftCreatePeriodicDeployment"
            case .executionLogs: return "craftExecutionLogs"
            case .deployment:
                return method == "DELETE"
                    ? "craftDeleteDeployment" : method == "PATCH" ? "craftUpdateDeployment" : "craftGetDeployment"
            case .latestExecution: return "craftLatestExecution"
            case .executeDeployment: return "craftExecuteDeployment"
            case .endpoint: return "craftTriggerEndpoint"
            case .endpointExecution: return "craftEndpointResult"
            case .endpointOutput: return "craftEndpointOutput"
            }
        }
    }

    /// The `operation` of a request no route matched.
    static let unmatched = "unmatched"

    /// The Abacus.AI actions by method and name, as openapi/openapi.json names them (each action answers GET
    /// and POST; the document gives the two distinct operationIds).
    private static let abacusOperations: [String: String] = [
        "GET getApiEndpoint": "abacusGetApiEndpoint",
        "POST getApiEndpoint": "abacusGetApiEndpointPost",
        "GET version": "abacusVersion",
        "POST version": "abacusVersionPost",
        "POST runPipeline": "abacusRunPipeline",
        "GET describePipelineVersion": "abacusDescribePipelineVersion",
        "POST describePipelineVersion": "abacusDescribePipelineVersionPost",
        "GET describePipelineStepVersion": "abacusDescribePipelineStepVersion",
        "POST describePipelineStepVersion": "abacusDescribePipelineStepVersionPost",
        "GET listPipelineVersionLogs": "abacusListPipelineVersionLogs",
        "POST listPipelineVersionLogs": "abacusListPipelineVersionLogsPost",
        "GET getStepVersionLogs": "abacusGetStepVersionLogs",
        "POST getStepVersionLogs": "abacusGetStepVersionLogsPost",
        "POST listPipelineVersions": "abacusListPipelineVersions",
        "GET listPipelineVersions": "abacusListPipelineVersionsGet",
        "POST describePipeline": "abacusDescribePipeline",
        "GET describePipeline": "abacusDescribePipelineGet",
    ]
}
