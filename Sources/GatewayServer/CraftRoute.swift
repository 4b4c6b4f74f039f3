import CraftSurface
import GatewayConfig
import TriggerModel

/// The routes of the Craft AI surface (CLIENTS.md §3.7), parsed from a request target's decoded segments.
enum CraftRoute: Equatable {
    /// `POST /api/v1/auth/refresh`
    case refresh
    /// `GET /api/v1/pipelines` (`list_pipelines`); `POST` (`create_pipeline`, refused: 501)
    case pipelines
    /// `GET /api/v1/pipelines/{name}`; `DELETE` (`delete_pipeline`, refused: 501)
    case pipeline(name: String)
    /// `POST /api/v1/pipelines/{name}/logs` (`get_pipeline_logs`, refused: 501)
    case pipelineLogs(name: String)
    /// `GET /api/v1/pipelines/{name}/executions` (`list_pipeline_executions`)
    case pipelineExecutions(name: String)
    /// `GET /api/v1/pipelines/{name}/executions/latest` (`get_pipeline` reads it for `last_execution_id`)
    case latestPipelineExecution(name: String)
    /// `POST /api/v1/pipelines/{name}/run`
    case runPipeline(name: String)
    /// `GET /api/v1/executions/{id}[?include_io_values=false]` (`get_pipeline_execution`); `DELETE`
    /// (`delete_pipeline_execution`: deletes a finished execution, cancels an unfinished one)
    case execution(id: String)
    /// `GET /api/v1/executions/{id}/inputs/{name}` (a file input's bytes, `get_pipeline_execution_input`)
    case executionInput(id: String, name: String)
    /// `POST /api/v1/executions/{id}/logs` (`get_pipeline_execution_logs`: `{from?, to?, limit?}`)
    case executionLogs(id: String)
    /// `GET /api/v1/executions/{id}/outputs[?wait_for_completion=true]`
    case executionOutputs(id: String)
    /// `GET /api/v1/executions/{id}/outputs/{name}`
    case executionOutput(id: String, name: String)
    /// `GET /api/v1/deployments` (`list_deployments`)
    case deployments
    /// `POST /api/v1/endpoints` or `POST /api/v1/periodic-deployment` (`create_deployment`, by execution rule)
    case createDeployment(rule: CraftDeploymentConfiguration.ExecutionRule)
    /// `GET /api/v1/deployments/{name}[?wait_for_completion=true]`; `DELETE` (`delete_deployment`) and `PATCH`
    /// (`update_deployment`), both refused (501)
    case deployment(name: String)
    /// `POST /api/v1/deployments/{name}/logs` (`get_deployment_logs`, refused: 501)
    case deploymentLogs(name: String)
    /// `GET /api/v1/deployments/{name}/executions/latest`
    case latestExecution(deployment: String)
    /// `POST /api/v1/deployments/{name}/executions`
    case executeDeployment(name: String)
    /// `POST /endpoints/{endpoint_url_path}`
    case endpoint(path: String)
    /// `GET /endpoints/v1/{endpoint_url_path}/executions/{id}?token=`
    case endpointExecution(path: String, id: String)
    /// `GET /endpoints/v1/{endpoint_url_path}/executions/{id}/outputs/{name}?token=` (a file output's `url`)
    case endpointOutput(path: String, id: String, name: String)

    var allowedMethods: [String] {
        switch self {
        case .refresh, .runPipeline, .executeDeployment, .endpoint, .createDeployment, .executionLogs, .pipelineLogs,
            .deploymentLogs:
            ["POST"]
        case .deployment: ["GET", "HEAD", "DELETE", "PATCH"]
        case .pipeline, .execution: ["GET", "HEAD", "DELETE"]
        case .pipelines: ["GET", "HEAD", "POST"]
        case .pipelineExecutions, .latestPipelineExecution, .executionInput, .executionOutputs,
            .executionOutput, .deployments, .latestExecution, .endpointExecution, .endpointOutput:
            ["GET", "HEAD"]
        }
    }

    /// The execution (an async operation's id) the path names, for the request's record (`operation.id`).
    var executionID: String? {
        switch self {
        case .execution(let id), .executionInput(let id, _), .executionLogs(let id), .executionOutputs(let id),
            .executionOutput(let id, _), .endpointExecution(_, let id), .endpointOutput(_, let id, _):
            id
        default: nil
        }
    }

    /// Whether the route is under `/endpoints/`, where an endpoint token authenticates (`EndpointToken`, `Bearer`
    /// or `?token=`), not an access token.
    var isEndpoint: Bool {
        switch self {
        case .endpoint, .endpointExecution, .endpointOutput: true
        default: false
        }
    }

    /// The body cap of `POST /api/v1/auth/refresh`, whose credential is in its body (`{"refresh_token": …}`, a
    /// few hundred bytes from the SDK): anyone may send it, so it gets no share of the request buffer budget
    /// worth holding (security review 60, H1; its bytes come from `RequestBufferBudget.unauthenticated`).
    static let refreshBodyBytes = 16 << 10

    /// Whether a request with `method` on this route carries a body the route reads.
    func readsBody(method: String) -> Bool {
        switch self {
        case .refresh, .runPipeline, .executeDeployment, .endpoint, .createDeployment, .executionLogs, .pipelineLogs,
            .deploymentLogs:
            true
        case .deployment:
            // `update_deployment`'s changes (`PATCH`, JSON): read whole, so the connection stays usable after
            // the 501.
            method == "PATCH"
        default: false
        }
    }

    /// Whether a path whose first segment (after the leading slash) is `segment` may be one of these routes: the
    /// first segments ``init(segments:)`` switches on. `RESTPath.parse` asks before it makes the `String`s the
    /// initialiser takes, so an Instill path (`/v1beta/...`) makes none.
    static func mayMatch(firstSegment segment: Substring) -> Bool {
        segment == "api" || segment == "endpoints"
    }

    /// `parts` are the target's path segments, percent-decoded, with the leading empty one (`/api/v1/...` is
    /// `["", "api", "v1", ...]`). nil when the path is none of these routes. Its first segments are those of
    /// ``mayMatch(firstSegment:)``.
    init?(segments parts: [String]) {
        guard parts.count >= 3, parts[0].isEmpty, parts.dropFirst().allSatisfy({ !$0.isEmpty }) else { return nil }
        let p = Array(parts.dropFirst())
        switch p[0] {
        case "api":
            guard p[1] == "v1" else { return nil }
            switch Array(p.dropFirst(2)).count {
            case 1 where p[2] == "pipelines": self = .pipelines
            case 1 where p[2] == "deployments": self = .deployments
            case 1 where p[2] == "endpoints": self = .createDeployment(rule: .endpoint)
            case 1 where p[2] == "periodic-deployment": self = .createDeployment(rule: .periodic)
            case 2 where p[2] == "auth" && p[3] == "refresh": self = .refresh
            case 2 where p[2] == "executions": self = .execution(id: p[3])
            case 2 where p[2] == "pipelines": self = .pipeline(name: p[3])
            case 2 where p[2] == "deployments": self = .deployment(name: p[3])
            case 3 where p[2] == "pipelines" && p[4] == "run": self = .runPipeline(name: p[3])
            case 3 where p[2] == "pipelines" && p[4] == "executions": self = .pipelineExecutions(name: p[3])
            case 3 where p[2] == "executions" && p[4] == "outputs": self = .executionOutputs(id: p[3])
            case 3 where p[2] == "executions" && p[4] == "logs": self = .executionLogs(id: p[3])
            case 3 where p[2] == "pipelines" && p[4] == "logs": self = .pipelineLogs(name: p[3])
            case 3 where p[2] == "deployments" && p[4] == "logs": self = .deploymentLogs(name: p[3])
            case 3 where p[2] == "deployments" && p[4] == "executions": self = .executeDeployment(name: p[3])
            case 4 where p[2] == "executions" && p[4] == "outputs": self = .executionOutput(id: p[3], name: p[5])
            case 4 where p[2] == "executions" && p[4] == "inputs": self = .executionInput(id: p[3], name: p[5])
            case 4 where p[2] == "pipelines" && p[4] == "executions" && p[5] == "latest":
                self = .latestPipelineExecution(name: p[3])
            case 4 where p[2] == "deployments" && p[4] == "executions" && p[5] == "latest":
                self = .latestExecution(deployment: p[3])
            default: return nil
            }
        case "endpoints":
            if p.count == 2 {
                self = .endpoint(path: p[1])
            } else if p.count == 5, p[1] == "v1", p[3] == "executions" {
                self = .endpointExecution(path: p[2], id: p[4])
            } else if p.count == 7, p[1] == "v1", p[3] == "executions", p[5] == "outputs" {
                self = .endpointOutput(path: p[2], id: p[4], name: p[6])
            } else {
                return nil
            }
        default:
            return nil
        }
    }
}

extension CraftRoute {
    /// The pipeline a request on this route names, for its record (the access log and the request metrics), and
    /// the trigger mode when it starts an execution (`.async`: an execution is an async operation). Read from
    /// the path and the configuration only, before the request is authenticated or served, as a REST trigger's
    /// is; nil for routes that name no pipeline (auth, reads of an execution by its id) and for a deployment or
    /// endpoint path no deployment has.
    func pipeline(of craft: CraftSurface) -> (ref: PipelineRef, mode: TriggerMode?)? {
        let configuration = craft.configuration
        let deployment: CraftDeploymentConfiguration?
        var mode: TriggerMode? = nil
        switch self {
        case .pipeline(let name), .pipelineExecutions(let name), .latestPipelineExecution(let name),
            .pipelineLogs(let name):
            return (craft.ref(pipeline: name), nil)
        case .runPipeline(let name):
            return (craft.ref(pipeline: name), .async)
        case .deployment(let name), .latestExecution(let name), .deploymentLogs(let name):
            deployment = configuration.deployment(named: name)
        case .executeDeployment(let name):
            deployment = configuration.deployment(named: name)
            mode = .async
        case .endpoint(let path):
            deployment = configuration.deployment(endpointURLPath: path)
            mode = .async
        case .endpointExecution(let path, _), .endpointOutput(let path, _, _):
            deployment = configuration.deployment(endpointURLPath: path)
        case .refresh, .pipelines, .execution, .executionInput, .executionOutputs, .executionOutput, .deployments,
            .createDeployment, .executionLogs:
            return nil
        }
        guard let deployment else { return nil }
        return (craft.ref(pipeline: deployment.pipeline, release: deployment.release), mode)
    }
}
