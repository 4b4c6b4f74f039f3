import TriggerModel
import Yams

extension GatewayConfiguration {
    /// `craft:`: see `CraftConfiguration` for what each key means. Its `pipelines` and `deployments` items are
    /// checked each on its own (`ConfigMistakes`; the ones with a mistake are left out).
    /// `maxWait`: `store.max_wait`, which bounds every held operation read, this surface's included.
    /// `tokens`, `maxWait`: nil when their section had a mistake, and the checks against them are skipped.
    /// `authRequired`: a periodic deployment without `operators` is warned about (no caller may control it).
    static func readCraft(
        _ node: Node,
        tokens: [TokenConfiguration]?,
        authRequired: Bool,
        maxWait: Duration?,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) -> CraftConfiguration {
        let m = try reader.mapping(
            node,
            at: "craft",
            allowed: [
                "namespace", "long_poll_wait", "max_io_bytes", "jwt_secret_file", "access_token_lifetime", "pipelines",
                "deployments",
            ]
        )
        var craft = CraftConfiguration.defaults
        if let n = m["namespace"] {
            craft.namespace = try routeName(n, m.path("namespace"), reader)
            if craft.namespace == RouteConfiguration.wildcard {
                throw reader.error(m.path("namespace"), n, "must name one namespace, not \"*\"")
            }
        }
        if let n = m["long_poll_wait"] {
            let range = CraftConfiguration.longPollWaitRange
            craft.longPollWait = try reader.duration(n, at: m.path("long_poll_wait"), minimum: range.lowerBound)
            guard craft.longPollWait <= range.upperBound else {
                throw reader.error(
                    m.path("long_poll_wait"), n, "must be at most \(ConfigUnits.format(range.upperBound))")
            }
            if let maxWait, craft.longPollWait > maxWait {
                throw reader.error(
                    m.path("long_poll_wait"),
                    n,
                    "must not be longer than store.max_wait (\(ConfigUnits.format(maxWait))), which bounds every held read"
                )
            }
        }
        if let n = m["max_io_bytes"] {
            craft.maxIOBytes = try reader.byteSize(
                n, at: m.path("max_io_bytes"), in: CraftConfiguration.maxIOBytesRange)
        }
        if let n = m["jwt_secret_file"] {
            craft.jwtSecretFile = try reader.nonEmptyString(n, at: m.path("jwt_secret_file"))
        }
        if let n = m["access_token_lifetime"] {
            let range = CraftConfiguration.accessTokenLifetimeRange
            craft.accessTokenLifetime = try reader.duration(
                n, at: m.path("access_token_lifetime"), minimum: range.lowerBound)
            guard craft.accessTokenLifetime <= range.upperBound else {
                throw reader.error(
                    m.path("access_token_lifetime"), n, "must be at most \(ConfigUnits.format(range.upperBound))")
            }
        }
        if let n = m["pipelines"] {
            reader.forEachItem(n, at: m.path("pipelines")) { (i, item) throws(ConfigError) in
                let path = "\(m.path("pipelines"))[\(i)]"
                let p = try reader.mapping(item, at: path, allowed: ["name", "inputs", "outputs"])
                let nameNode = try require(p, "name", reader)
                let name = try routeName(nameNode, p.path("name"), reader)
                if craft.pipelines.contains(where: { $0.name == name }) {
                    throw reader.error(p.path("name"), nameNode, "duplicate pipeline \"\(name)\"")
                }
                craft.pipelines.append(
                    CraftPipelineConfiguration(
                        name: name,
                        inputs: try readParameters(p["inputs"], at: p.path("inputs"), reader),
                        outputs: try readParameters(p["outputs"], at: p.path("outputs"), reader)
                    )
                )
            }
        }
        if let n = m["deployments"] {
            var deployments: [CraftDeploymentConfiguration] = []
            reader.forEachItem(n, at: m.path("deployments")) { (i, item) throws(ConfigError) in
                let deployment = try readDeployment(
                    item,
                    at: "\(m.path("deployments"))[\(i)]",
                    namespace: craft.namespace,
                    tokens: tokens,
                    authRequired: authRequired,
                    reader
                )
                if let first = deployments.firstIndex(where: { $0.name == deployment.name }) {
                    throw reader.error(
                        "\(m.path("deployments"))[\(i)].name", item,
                        "duplicate deployment name (also deployments[\(first)])")
                }
                if deployment.endpointURLPath != nil,
                    let first = deployments.firstIndex(where: { $0.endpointURLPath == deployment.endpointURLPath })
                {
                    throw reader.error(
                        "\(m.path("deployments"))[\(i)].endpoint_url_path",
                        item,
                        "duplicate endpoint_url_path (also deployments[\(first)])"
                    )
                }
                if let declared = craft.pipeline(named: deployment.pipeline) {
                    try checkShadowedOutputs(
                        deployment, declared: declared, at: "\(m.path("deployments"))[\(i)]", item, reader)
                }
                deployments.append(deployment)
            }
            craft.deployments = deployments
        }
        return craft
    }

    /// Diff review 59, M4: an output mapping that sends a pipeline output to the name of another output the
    /// pipeline declares (`craft.pipelines`), which no mapping mentions, puts two outputs under one endpoint name,
    /// as two mappings to one name would (F2). Outputs only a runner's `Describe` names are not known here: the
    /// reads leave such a shadowed output out (`CraftMappings.mappedOutputs`).
    private static func checkShadowedOutputs(
        _ deployment: CraftDeploymentConfiguration,
        declared: CraftPipelineConfiguration,
        at path: String,
        _ node: Node,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) {
        let mappings = deployment.outputMappings ?? []
        let shadowed = CraftConfiguration.shadowedOutputs(
            of: declared.outputs.map(\.name),
            by: mappings.map { mapping in
                switch mapping.destination {
                case .endpointOutput(let name): (pipelineOutput: mapping.pipelineOutputName, endpointOutput: name)
                case .null: (pipelineOutput: mapping.pipelineOutputName, endpointOutput: nil)
                }
            })
        guard let clash = shadowed.first,
            let j = mappings.firstIndex(where: { $0.pipelineOutputName == clash.mappedFrom })
        else { return }
        throw reader.error(
            "\(path).output_mappings[\(j)].endpoint_output_name",
            node,
            "\"\(clash.output)\" is also the name of output \"\(clash.output)\" of pipeline \(declared.name) "
                + "(craft.pipelines), which no mapping renames or drops: the result could hold only one of them; map "
                + "\"\(clash.output)\" too (to another name, or is_null)"
        )
    }

    /// Run once routes and `schedules:` are read: a periodic deployment's pipeline must be served by a route,
    /// and its schedule's name (`craft.<deployment>`) must not be one of `schedules:` (both share
    /// `/v1beta/schedules` and the store's schedule state).
    static func checkPeriodicDeployments(
        _ config: GatewayConfiguration,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) {
        for (i, deployment) in (config.craft.deployments ?? []).enumerated() {
            guard let schedule = deployment.schedule else { continue }
            let path = "craft.deployments[\(i)]"
            guard isServed(schedule.ref, by: config.routes) else {
                throw reader.error("\(path).pipeline", nil, "no route serves \(schedule.ref); add one under routes")
            }
            if let j = config.schedules.firstIndex(where: { $0.name == schedule.name }) {
                throw reader.error(
                    "schedules[\(j)].name",
                    nil,
                    "\"\(schedule.name)\" is the schedule of the periodic deployment \(path); rename one of them"
                )
            }
        }
    }

    private static func readParameters(_ node: Node?, at path: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> [CraftPipelineConfiguration.Parameter]
    {
        guard let node else { return [] }
        var parameters: [CraftPipelineConfiguration.Parameter] = []
        for (i, item) in try reader.sequence(node, at: path).enumerated() {
            let p = try reader.mapping(item, at: "\(path)[\(i)]", allowed: ["name", "data_type"])
            let nameNode = try require(p, "name", reader)
            let name = try reader.nonEmptyString(nameNode, at: p.path("name"))
            if let reason = CraftConfiguration.unreadableNameReason(name) {
                throw reader.error(p.path("name"), nameNode, reason)
            }
            if parameters.contains(where: { $0.name == name }) {
                throw reader.error(p.path("name"), nameNode, "duplicate name \"\(name)\"")
            }
            let typeNode = try require(p, "data_type", reader)
            let type = try reader.string(typeNode, at: p.path("data_type"))
            guard CraftPipelineConfiguration.dataTypes.contains(type) else {
                throw reader.error(
                    p.path("data_type"),
                    typeNode,
                    "unknown data type \"\(type)\"; expected \(CraftPipelineConfiguration.dataTypes.joined(separator: " | "))"
                )
            }
            parameters.append(.init(name: name, dataType: type))
        }
        return parameters
    }

    /// The keys only a periodic deployment takes (its schedule), and those only an endpoint one takes.
    static let periodicDeploymentKeys = [
        "schedule", "timezone", "inputs", "overlap", "catchup_window", "paused", "operators",
    ]
    static let endpointDeploymentKeys = ["endpoint_url_path", "tokens"]

    private static func readDeployment(
        _ node: Node,
        at path: String,
        namespace: String,
        tokens: [TokenConfiguration]?,
        authRequired: Bool,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) -> CraftDeploymentConfiguration {
        let m = try reader.mapping(
            node,
            at: path,
            allowed: [
                "name", "pipeline", "release", "execution_rule", "max_io_bytes", "input_mappings", "output_mappings",
            ] + endpointDeploymentKeys + periodicDeploymentKeys
        )
        let nameNode = try require(m, "name", reader)
        let name = try reader.nonEmptyString(nameNode, at: m.path("name"))
        guard name.utf8.allSatisfy(isNameByte) else {
            throw reader.error(
                m.path("name"), nameNode, "deployment names may only use letters, digits, \".\", \"_\" and \"-\"")
        }
        let pipelineNode = try require(m, "pipeline", reader)
        let pipeline = try routeName(pipelineNode, m.path("pipeline"), reader)
        if pipeline == RouteConfiguration.wildcard {
            throw reader.error(m.path("pipeline"), pipelineNode, "must name one pipeline, not \"*\"")
        }
        var deployment = CraftDeploymentConfiguration(name: name, pipeline: pipeline, endpointURLPath: name)
        if let n = m["release"] {
            let release = try routeName(n, m.path("release"), reader)
            deployment.release = release == RouteConfiguration.wildcard ? nil : release
        }
        if let n = m["execution_rule"] {
            deployment.executionRule = try reader.choice(
                n,
                at: m.path("execution_rule"),
                as: CraftDeploymentConfiguration.ExecutionRule.self
            )
        }
        if deployment.executionRule == .periodic {
            deployment.endpointURLPath = nil
            deployment.schedule = try readDeploymentSchedule(
                m, deployment: deployment, namespace: namespace, tokens: tokens, authRequired: authRequired, reader)
        } else if let key = periodicDeploymentKeys.first(where: m.has) {
            throw reader.error(m.path(key), m[key], "applies only to a deployment with execution_rule: periodic")
        }
        if deployment.executionRule == .periodic {
            // Craft AI's periodic deployments have no endpoint: nothing may trigger them from outside.
        } else if let n = m["endpoint_url_path"] {
            let text = try reader.nonEmptyString(n, at: m.path("endpoint_url_path"))
            // One segment under /endpoints/; "v1" would collide with the result route /endpoints/v1/…, and "." and
            // ".." are dot segments that clients remove before sending (RFC 3986 §5.2.4: requests, curl).
            guard text.utf8.allSatisfy(isNameByte), text != "v1", !CraftConfiguration.isDotSegment(text) else {
                throw reader.error(
                    m.path("endpoint_url_path"),
                    n,
                    "must be one path segment of letters, digits, \".\", \"_\" and \"-\" (and not \"v1\", \".\" or \"..\")"
                )
            }
            deployment.endpointURLPath = text
        } else if name == "v1" {
            throw reader.error(m.path("name"), nameNode, "a deployment named \"v1\" needs another endpoint_url_path")
        }
        if let n = m["tokens"], deployment.executionRule == .endpoint {
            for (i, item) in try reader.sequence(n, at: m.path("tokens")).enumerated() {
                let tokenPath = "\(m.path("tokens"))[\(i)]"
                let tokenName = try reader.nonEmptyString(item, at: tokenPath)
                if let tokens, !tokens.contains(where: { $0.name == tokenName }) {
                    throw reader.error(tokenPath, item, "no token named \"\(tokenName)\" in tokens")
                }
                deployment.tokens.append(tokenName)
            }
        }
        if let n = m["max_io_bytes"] {
            deployment.maxIOBytes = try reader.byteSize(
                n, at: m.path("max_io_bytes"), in: CraftConfiguration.maxIOBytesRange)
        }
        if let n = m["input_mappings"] {
            var mappings: [CraftInputMappingConfiguration] = []
            for (i, item) in try reader.sequence(n, at: m.path("input_mappings")).enumerated() {
                let mapping = try readInputMapping(item, at: "\(m.path("input_mappings"))[\(i)]", reader)
                if mappings.contains(where: { $0.pipelineInputName == mapping.pipelineInputName }) {
                    throw reader.error("\(m.path("input_mappings"))[\(i)]", item, "duplicate pipeline_input_name")
                }
                mappings.append(mapping)
            }
            deployment.inputMappings = mappings
        }
        if let n = m["output_mappings"] {
            var mappings: [CraftOutputMappingConfiguration] = []
            for (i, item) in try reader.sequence(n, at: m.path("output_mappings")).enumerated() {
                let itemPath = "\(m.path("output_mappings"))[\(i)]"
                let o = try reader.mapping(
                    item, at: itemPath, allowed: ["pipeline_output_name", "endpoint_output_name", "is_null"])
                let pipelineName = try reader.nonEmptyString(
                    try require(o, "pipeline_output_name", reader), at: o.path("pipeline_output_name"))
                let destination: CraftOutputMappingConfiguration.Destination
                switch (o["endpoint_output_name"], o["is_null"]) {
                case (let n?, nil):
                    let endpointName = try reader.nonEmptyString(n, at: o.path("endpoint_output_name"))
                    if let reason = CraftConfiguration.unreadableNameReason(endpointName) {
                        throw reader.error(o.path("endpoint_output_name"), n, reason)
                    }
                    destination = .endpointOutput(endpointName)
                case (nil, let n?):
                    guard n.bool == true else { throw reader.error(o.path("is_null"), n, "must be true when given") }
                    destination = .null
                default:
                    throw reader.error(itemPath, item, "needs exactly one of endpoint_output_name, is_null")
                }
                if mappings.contains(where: { $0.pipelineOutputName == pipelineName }) {
                    throw reader.error(itemPath, item, "duplicate pipeline_output_name")
                }
                // Two pipeline outputs into one endpoint output: the result could hold only one of them.
                if case .endpointOutput(let endpointName) = destination,
                    let other = mappings.first(where: { $0.destination == destination })
                {
                    throw reader.error(
                        itemPath, item,
                        "duplicate endpoint_output_name \"\(endpointName)\" (pipeline output \"\(other.pipelineOutputName)\" maps to it)"
                    )
                }
                mappings.append(
                    CraftOutputMappingConfiguration(pipelineOutputName: pipelineName, destination: destination))
            }
            deployment.outputMappings = mappings
        }
        return deployment
    }

    /// A periodic deployment's schedule (`schedule`, `timezone`, `inputs`, `overlap`, `catchup_window`,
    /// `paused`, `operators`, read as `schedules[]` reads them), named `craft.<deployment>`. Refuses the endpoint
    /// keys: `tokens` names who may trigger an endpoint, which a periodic deployment has not; who may pause,
    /// resume and trigger its schedule (and cancel its runs) is `operators`, the key `schedules[]` has.
    private static func readDeploymentSchedule(
        _ m: ConfigMapping,
        deployment: CraftDeploymentConfiguration,
        namespace: String,
        tokens: [TokenConfiguration]?,
        authRequired: Bool,
        _ reader: ConfigNodeReader
    ) throws(ConfigError) -> ScheduleConfiguration {
        if let key = endpointDeploymentKeys.first(where: m.has) {
            let hint =
                key == "tokens" ? "; the tokens that may pause, resume and trigger its schedule are operators" : ""
            throw reader.error(
                m.path(key),
                m[key],
                "a periodic deployment has no endpoint: remove \(key) (or use execution_rule: endpoint)\(hint)"
            )
        }
        let name = CraftDeploymentConfiguration.scheduleNamePrefix + deployment.name
        guard name.utf8.count <= 128 else {
            throw reader.error(
                m.path("name"),
                m["name"],
                "a periodic deployment's name is at most 122 bytes (its schedule, craft.<name>, at most 128)"
            )
        }
        let (cron, timeZone, timeZoneName) = try readCronAndZone(m, cronKey: "schedule", reader)
        var schedule = ScheduleConfiguration(
            name: name,
            cron: cron,
            timeZone: timeZone,
            timeZoneName: timeZoneName,
            ref: PipelineRef(namespace: namespace, pipeline: deployment.pipeline, release: deployment.release)
        )
        if let n = m["inputs"] {
            // One execution's endpoint inputs, as the JSON object an endpoint trigger's body would be.
            guard case .object(let inputs) = try configValue(n, at: m.path("inputs"), reader) else {
                throw reader.error(m.path("inputs"), n, "expected a mapping of endpoint input names to values")
            }
            schedule.inputs = [TriggerInput(variables: inputs)]
        }
        try readScheduleOptions(m, into: &schedule, tokens: tokens, authRequired: authRequired, reader)
        return schedule
    }

    private static func readInputMapping(_ node: Node, at path: String, _ reader: ConfigNodeReader) throws(ConfigError)
        -> CraftInputMappingConfiguration
    {
        let m = try reader.mapping(
            node,
            at: path,
            allowed: [
                "pipeline_input_name", "endpoint_input_name", "constant_value", "environment_variable_name", "is_null",
                "is_required", "default_value",
            ]
        )
        let name = try reader.nonEmptyString(
            try require(m, "pipeline_input_name", reader), at: m.path("pipeline_input_name"))
        let sources = ["endpoint_input_name", "constant_value", "environment_variable_name", "is_null"].filter(m.has)
        guard sources.count == 1 else {
            throw reader.error(
                path,
                node,
                "needs exactly one of endpoint_input_name, constant_value, environment_variable_name, is_null"
            )
        }
        let source: CraftInputMappingConfiguration.Source
        switch sources[0] {
        case "endpoint_input_name":
            let endpointName = try reader.nonEmptyString(m["endpoint_input_name"]!, at: m.path("endpoint_input_name"))
            if let reason = CraftConfiguration.unreadableNameReason(endpointName) {
                throw reader.error(m.path("endpoint_input_name"), m["endpoint_input_name"], reason)
            }
            source = .endpointInput(endpointName)
        case "constant_value":
            source = .constant(try configValue(m["constant_value"]!, at: m.path("constant_value"), reader))
        case "environment_variable_name":
            source = .environmentVariable(
                try reader.nonEmptyString(m["environment_variable_name"]!, at: m.path("environment_variable_name"))
            )
        default:
            guard m["is_null"]!.bool == true else {
                throw reader.error(m.path("is_null"), m["is_null"], "must be true when given")
            }
            source = .null
        }
        var mapping = CraftInputMappingConfiguration(pipelineInputName: name, source: source)
        if let n = m["is_required"] {
            guard let flag = n.bool else { throw reader.error(m.path("is_required"), n, "expected true or false") }
            mapping.isRequired = flag
        }
        if let n = m["default_value"] { mapping.defaultValue = try configValue(n, at: m.path("default_value"), reader) }
        if case .endpointInput = source {
        } else if mapping.isRequired || mapping.defaultValue != nil {
            throw reader.error(path, node, "is_required and default_value apply only to an endpoint_input_name mapping")
        }
        return mapping
    }
}
