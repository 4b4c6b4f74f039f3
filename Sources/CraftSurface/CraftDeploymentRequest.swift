package import GatewayConfig
import NIOCore
import TriggerModel
package import WireCodecs

/// A `create_deployment` body (craft-ai-sdk 0.74.7 posts it as JSON to `/api/v1/endpoints` for the `endpoint`
/// rule, `/api/v1/periodic-deployment` for `periodic`): `{pipeline_name, name, mode, schedule?,
/// endpoint_url_path?, endpoint_token?, inputs_mapping?, outputs_mapping?}` plus resource hints (`description`,
/// `ram_request`, `gpu_request`, `enable_parallel_executions`, `max_parallel_executions_per_pod`,
/// `execution_timeout_s`), which the gateway has no use for and ignores. The SDK leaves out every key whose
/// value is None.
///
/// Deployments are the gateway's configuration (`craft.deployments`, or one implicit deployment per pipeline),
/// so a creation is honoured only when it asks for a deployment that exists as asked: ``mismatch(with:)``.
package struct CraftDeploymentRequest: Sendable, Equatable {
    package var name: String
    package var pipeline: String
    package var rule: CraftDeploymentConfiguration.ExecutionRule
    /// `elastic` or `low_latency` (the SDK checks it is one of these).
    package var mode: String
    /// The endpoint path asked for; nil: the deployment's name (Craft AI's default).
    package var endpointURLPath: String?
    /// A periodic deployment's cron expression, as sent.
    package var schedule: String?
    package var endpointToken: String?
    /// Whether the body names input or output mappings (a non-empty list).
    package var hasMappings: Bool

    /// - Throws: `GatewayError(.invalidArgument)` for a body that is not a JSON object, a missing or non-string
    ///   `name` / `pipeline_name`, or a field of the wrong type; `.unsupportedMediaType` for a form or multipart.
    package init(_ body: CraftRequestBody, rule: CraftDeploymentConfiguration.ExecutionRule, limits: CodecLimits)
        throws
    {
        guard case .json(let bytes) = body else {
            throw GatewayError(.unsupportedMediaType, "a deployment is created with an application/json body")
        }
        let object = try JSONValueCodec.decodeObject(bytes, limits: limits, what: "request body", dataURIs: .text)
        func string(_ key: String, required: Bool = false) throws -> String? {
            switch object[key] {
            case .string(let value) where !value.isEmpty: return value
            case nil, .null?:
                if required { throw GatewayError(.invalidArgument, "the body needs a string \"\(key)\"") }
                return nil
            default: throw GatewayError(.invalidArgument, "\"\(key)\" must be a non-empty string")
            }
        }
        func nonEmptyList(_ key: String) throws -> Bool {
            switch object[key] {
            case nil, .null?: return false
            case .list(let items)?: return !items.isEmpty
            default: throw GatewayError(.invalidArgument, "\"\(key)\" must be a list")
            }
        }
        name = try string("name", required: true) ?? ""
        pipeline = try string("pipeline_name", required: true) ?? ""
        self.rule = rule
        mode = try string("mode") ?? "elastic"
        endpointURLPath = try string("endpoint_url_path")
        schedule = try string("schedule")
        endpointToken = try string("endpoint_token")
        hasMappings = try nonEmptyList("inputs_mapping") || nonEmptyList("outputs_mapping")
    }

    /// How `existing` differs from what was asked, as a phrase ("pipeline \"a\""), or nil when it is the
    /// deployment asked for: the same pipeline (no release), execution rule, endpoint path (the name when none
    /// is given) or schedule (the same cron text), mode `elastic`, and no mappings on either side.
    package func mismatch(with existing: CraftDeploymentConfiguration) -> String? {
        if existing.pipeline != pipeline || existing.release != nil {
            let release = existing.release.map { " (release \"\($0)\")" } ?? ""
            return "pipeline \"\(existing.pipeline)\"\(release)"
        }
        if existing.executionRule != rule { return "execution rule \"\(existing.executionRule.rawValue)\"" }
        if mode != "elastic" { return "mode \"elastic\" (the only mode the gateway has)" }
        switch rule {
        case .endpoint:
            let path = endpointURLPath ?? name
            if existing.endpointURLPath != path { return "endpoint path \"\(existing.endpointURLPath ?? "")\"" }
        case .periodic:
            let cron = existing.schedule?.cron.text
            if cron != schedule { return "schedule \"\(cron ?? "")\"" }
        }
        if hasMappings || existing.inputMappings != nil || existing.outputMappings != nil {
            return
                "its own input and output mappings (mappings are configuration: craft.deployments[].input_mappings, output_mappings)"
        }
        return nil
    }

    /// What to add to the configuration for this deployment: the answer to a creation that would need one.
    package var configurationHint: String {
        var entry = "{name: \(name), pipeline: \(pipeline)"
        switch rule {
        case .endpoint: entry += ", execution_rule: endpoint, endpoint_url_path: \(endpointURLPath ?? name)}"
        case .periodic: entry += ", execution_rule: periodic, schedule: \"\(schedule ?? "")\"}"
        }
        return "no deployment \"\(name)\": deployments are the gateway's configuration and are not created through "
            + "the API; add \(entry) under craft.deployments and reload the configuration"
    }
}

/// A `get_pipeline_execution_logs` body: `{from?, to?, limit?}` (times in milliseconds since the epoch, as
/// craft-ai-sdk's `datetime_to_timestamp_in_ms` sends them; the SDK leaves out what the caller did not give).
package struct CraftLogQuery: Sendable, Equatable {
    /// Inclusive bounds, in milliseconds since the epoch.
    package var from: Int64?
    package var to: Int64?
    /// At most this many lines, the oldest first; at least 1.
    package var limit: Int?

    package init(from: Int64? = nil, to: Int64? = nil, limit: Int? = nil) {
        self.from = from
        self.to = to
        self.limit = limit
    }

    /// - Throws: `GatewayError(.invalidArgument)` for a body that is not a JSON object, an unknown key, a time
    ///   that is not a whole number, or a `limit` below 1.
    package init(_ body: CraftRequestBody, limits: CodecLimits) throws {
        guard case .json(let bytes) = body else {
            throw GatewayError(.unsupportedMediaType, "execution logs are asked for with an application/json body")
        }
        self.init()
        guard bytes.readableBytes > 0 else { return }
        let object = try JSONValueCodec.decodeObject(bytes, limits: limits, what: "request body", dataURIs: .text)
        func integer(_ key: String) throws -> Int64? {
            switch object[key] {
            case nil, .null?: return nil
            case .number(let number, _)? where number.rounded() == number && abs(number) < 9e15: return Int64(number)
            default: throw GatewayError(.invalidArgument, "\"\(key)\" must be a whole number")
            }
        }
        for key in object.keys where !["from", "to", "limit"].contains(key) {
            throw GatewayError(.invalidArgument, "unknown key \"\(key)\": expected from, to or limit")
        }
        from = try integer("from")
        to = try integer("to")
        if let limit = try integer("limit") {
            guard limit >= 1 else {
                throw GatewayError(.invalidArgument, "\"limit\" must be at least 1 (it is \(limit))")
            }
            self.limit = Int(clamping: limit)
        }
    }

    /// The lines (each at `milliseconds`, oldest first) within the bounds, at most `limit` of them.
    package func select<Line>(_ lines: [(milliseconds: Int64, line: Line)]) -> [Line] {
        let kept = lines.filter { inBounds($0.milliseconds) }.map(\.line)
        return limit.map { Array(kept.prefix($0)) } ?? kept
    }

    private func inBounds(_ milliseconds: Int64) -> Bool {
        if let from, milliseconds < from { return false }
        if let to, milliseconds > to { return false }
        return true
    }
}
