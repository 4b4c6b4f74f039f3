import TriggerModel

/// The REST routes of API.md §2, parsed from a request target without allocating per-character.
///
/// Parsing is separate from the handler so HTTP/1.1 and REST-over-h2c share one table: a path either
/// names one of these endpoints (and the methods it allows), or it is unknown (404).
enum RESTPath: Equatable {
    enum TriggerKind: Equatable {
        /// `/trigger`: sync, or SSE when the client accepts `text/event-stream`.
        case trigger
        /// `/trigger-stream`.
        case stream
        /// `/trigger-async` or `/triggerAsync`.
        case async
    }

    case trigger(PipelineRef, TriggerKind)
    case operation(id: String)
    case cancelOperation(id: String)
    case listOperations
    case liveness
    case readiness
    case metrics

    /// The methods this endpoint answers; anything else is 405 with an `Allow` header.
    var allowedMethod: String {
        switch self {
        case .trigger, .cancelOperation: "POST"
        case .operation, .listOperations, .liveness, .readiness, .metrics: "GET"
        }
    }

    /// `{ns-kind}`: every spelling Instill's clients use for a namespace segment.
    private static let namespaceKinds: Set<Substring> = ["namespaces", "namespace", "users", "organizations"]

    /// Parses a request target (`/v1beta/...?query`); nil when no endpoint has this path.
    static func parse(_ target: String) -> RESTPath? {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        switch path {
        case "/v1beta/__liveness", "/healthz": return .liveness
        case "/v1beta/__readiness", "/readyz": return .readiness
        case "/metrics": return .metrics
        case "/v1beta/operations": return .listOperations
        default: break
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        // parts[0] is "" (the leading slash).
        guard parts.count >= 3, parts[0].isEmpty, parts[1] == "v1beta" else { return nil }
        if parts[2] == "operations", parts.count == 4, !parts[3].isEmpty {
            let last = parts[3]
            if last.hasSuffix(":cancel") {
                let id = last.dropLast(":cancel".count)
                return id.isEmpty ? nil : .cancelOperation(id: String(id))
            }
            return .operation(id: String(last))
        }
        guard namespaceKinds.contains(parts[2]) else { return nil }
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}/{verb}
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}/releases/{release}/{verb}
        let components = parts.dropFirst(3).map { $0 }
        guard components.allSatisfy({ !$0.isEmpty }) else { return nil }
        switch components.count {
        case 4 where components[1] == "pipelines":
            guard let kind = triggerKind(components[3]) else { return nil }
            let ref = PipelineRef(namespace: String(components[0]), pipeline: String(components[2]))
            return .trigger(ref, kind)
        case 6 where components[1] == "pipelines" && components[3] == "releases":
            guard let kind = triggerKind(components[5]) else { return nil }
            let ref = PipelineRef(
                namespace: String(components[0]),
                pipeline: String(components[2]),
                release: String(components[4])
            )
            return .trigger(ref, kind)
        default:
            return nil
        }
    }

    private static func triggerKind(_ verb: Substring) -> TriggerKind? {
        switch verb {
        case "trigger": .trigger
        case "trigger-stream": .stream
        case "trigger-async", "triggerAsync": .async
        default: nil
        }
    }
}
