package import TriggerModel

/// The Craft AI surface (`craft:` in the config file): which namespace its pipelines live in, how long an
/// execution read is held open, the non-file input/output cap, the access-token key, and its deployments.
///
/// A Craft *pipeline* is a route: `namespace` plus the pipeline id. A *deployment* names a pipeline (and
/// release), an execution rule (`endpoint`, with the tokens allowed to trigger it, or `periodic`, with a cron
/// schedule) and optional input and output mappings. With no `deployments` key every pipeline of the namespace
/// is also a deployment of the same name whose endpoint path is that name, so the SDK works against the
/// embedded default as it is.
package struct CraftConfiguration: Sendable, Equatable {
    /// The namespace of every pipeline on this surface (`demo` by default).
    package var namespace: String
    /// How long `GET /api/v1/executions/{id}/outputs?wait_for_completion=true` and the endpoint result read
    /// wait for an execution to finish before answering 307 with `Location` (the SDK re-sends at once).
    package var longPollWait: Duration
    /// The cap on an execution's non-file inputs, and separately on its non-file outputs, in bytes of their
    /// JSON encoding; files are exempt (up to `limits.max_body_bytes`). Craft AI documents 0.06 MB.
    package var maxIOBytes: Int
    /// A file holding the HS256 key of the access tokens (`/api/v1/auth/refresh`). Instances behind one load
    /// balancer must share it, so a token issued by one verifies on another. Unset: a key generated once into
    /// `data_dir/craft-jwt.key` (mode 0600).
    package var jwtSecretFile: String?
    /// How long an access token is valid. The SDK refreshes 120 s before it ends, so this is longer.
    package var accessTokenLifetime: Duration
    /// Pipeline descriptions that override (or stand in for) what the runner's `Describe` call says.
    package var pipelines: [CraftPipelineConfiguration]
    /// nil: implicit, one deployment per pipeline of `namespace` (the embedded default); a list: exactly these.
    package var deployments: [CraftDeploymentConfiguration]?

    package init(
        namespace: String = "demo",
        longPollWait: Duration = .seconds(25),
        maxIOBytes: Int = CraftConfiguration.defaultMaxIOBytes,
        jwtSecretFile: String? = nil,
        accessTokenLifetime: Duration = .seconds(3600),
        pipelines: [CraftPipelineConfiguration] = [],
        deployments: [CraftDeploymentConfiguration]? = nil
    ) {
        self.namespace = namespace
        self.longPollWait = longPollWait
        self.maxIOBytes = maxIOBytes
        self.jwtSecretFile = jwtSecretFile
        self.accessTokenLifetime = accessTokenLifetime
        self.pipelines = pipelines
        self.deployments = deployments
    }

    package static var defaults: CraftConfiguration { CraftConfiguration() }

    /// 0.06 MB (decimal), Craft AI's documented cap on an execution's non-file inputs and outputs.
    package static let defaultMaxIOBytes = 60_000
    package static let maxIOBytesRange = 1...(1 << 30)
    /// At most 10 minutes: a held request ties a connection, and the SDK re-sends at once anyway.
    package static let longPollWaitRange = Duration.milliseconds(1)...Duration.seconds(600)
    /// At least 121 s: the SDK refreshes when fewer than 120 s are left, so shorter means a refresh per call.
    package static let accessTokenLifetimeRange = Duration.seconds(121)...Duration.seconds(30 * 24 * 3600)

    /// The deployment named `name`, explicit or implicit (see `deployments`).
    package func deployment(named name: String) -> CraftDeploymentConfiguration? {
        guard let deployments else {
            return CraftDeploymentConfiguration(name: name, pipeline: name, endpointURLPath: name)
        }
        return deployments.first { $0.name == name }
    }

    /// The deployment whose endpoint path is `path`, explicit or implicit.
    package func deployment(endpointURLPath path: String) -> CraftDeploymentConfiguration? {
        guard let deployments else {
            return CraftDeploymentConfiguration(name: path, pipeline: path, endpointURLPath: path)
        }
        return deployments.first { $0.executionRule == .endpoint && $0.endpointURLPath == path }
    }

    package func pipeline(named name: String) -> CraftPipelineConfiguration? { pipelines.first { $0.name == name } }

    /// Whether `segment` is a dot segment, `.` or `..`, which clients remove from a URL path before sending it
    /// (RFC 3986 §5.2.4: requests, curl), so a path holding one as a segment never arrives as written.
    package static func isDotSegment(_ segment: String) -> Bool {
        segment == "." || segment == ".."
    }

    /// Why craft-ai-sdk could not read back an input or output of this name, or nil when it can. The SDK puts
    /// names into URL paths unencoded (`/api/v1/executions/{id}/outputs/{name}`, `…/inputs/{name}`): there `/`
    /// splits the segment, `?` and `#` end the path, `%` starts an escape, and a dot segment is removed, as for
    /// `endpoint_url_path` (review 59, F7 and F8). Spaces and other scripts are fine: `requests` encodes them.
    package static func unreadableNameReason(_ name: String) -> String? {
        let unsafe = name.unicodeScalars.first { "/?#%".unicodeScalars.contains($0) }
        guard unsafe != nil || isDotSegment(name) else { return nil }
        let what = unsafe.map { "holds \"\($0)\"" } ?? "is a dot segment"
        return "\"\(name)\" \(what): craft-ai-sdk puts names into URL paths unencoded, where \"/\", \"?\", \"#\" "
            + "and \"%\" change the path and \".\" and \"..\" are removed, so it could not read the value back; rename it"
    }

    /// The outputs an output mapping shadows (diff review 59, M4): for a mapping that sends pipeline output `from`
    /// to endpoint name `E`, an output named `E` among `outputNames` that no mapping mentions would pass under its
    /// own name, `E`, too, and the result can hold only one of them. In mapping order.
    /// - Parameters:
    ///   - mappings: each mapping's pipeline output name and endpoint output name (nil: dropped, `is_null`).
    package static func shadowedOutputs(
        of outputNames: some Sequence<String>,
        by mappings: [(pipelineOutput: String, endpointOutput: String?)]
    ) -> [(output: String, mappedFrom: String)] {
        let mentioned = Set(mappings.map(\.pipelineOutput))
        let unmapped = Set(outputNames).subtracting(mentioned)
        return mappings.compactMap { mapping in
            guard let name = mapping.endpointOutput, unmapped.contains(name) else { return nil }
            return (name, mapping.pipelineOutput)
        }
    }
}

/// A pipeline's declared inputs and outputs (`craft.pipelines[]`), for runners that cannot describe it.
package struct CraftPipelineConfiguration: Sendable, Equatable {
    package struct Parameter: Sendable, Equatable {
        package var name: String
        /// `string`, `number`, `boolean`, `json`, `array` or `file`.
        package var dataType: String

        package init(name: String, dataType: String) {
            self.name = name
            self.dataType = dataType
        }
    }

    package var name: String
    package var inputs: [Parameter]
    package var outputs: [Parameter]

    package init(name: String, inputs: [Parameter] = [], outputs: [Parameter] = []) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
    }

    package static let dataTypes = ["string", "number", "boolean", "json", "array", "file"]
}

/// One deployment (`craft.deployments[]`).
package struct CraftDeploymentConfiguration: Sendable, Equatable {
    package enum ExecutionRule: String, Sendable, Equatable, CaseIterable {
        /// Triggered by `POST /endpoints/{endpoint_url_path}` with an endpoint token, or through the API.
        case endpoint
        /// Run on a cron schedule (`schedule`) by the gateway's scheduler; it has no endpoint.
        case periodic
    }

    /// The prefix of a periodic deployment's schedule name (`craft.<deployment>`), as `/v1beta/schedules`
    /// and each run's metadata show it.
    package static let scheduleNamePrefix = "craft."

    package var name: String
    /// The pipeline id (in `craft.namespace`).
    package var pipeline: String
    package var release: String?
    package var executionRule: ExecutionRule
    /// The one path segment under `/endpoints/`; nil for a periodic deployment (it has no endpoint).
    package var endpointURLPath: String?
    /// Names of `tokens[]` entries allowed to trigger the endpoint; empty: any configured token.
    package var tokens: [String]
    /// Overrides `craft.max_io_bytes` for this deployment.
    package var maxIOBytes: Int?
    /// nil: endpoint inputs pass to the pipeline under their own names.
    package var inputMappings: [CraftInputMappingConfiguration]?
    /// nil: pipeline outputs pass to the endpoint under their own names (so do outputs no mapping names).
    package var outputMappings: [CraftOutputMappingConfiguration]?
    /// A periodic deployment's schedule, named `craft.<name>`, on the deployment's pipeline. Its `inputs` are
    /// the endpoint inputs as configured (one item), before the input mappings: `CraftExecution.schedule(of:)`
    /// applies them and adds the execution's labels. nil for an endpoint deployment.
    package var schedule: ScheduleConfiguration?

    package init(
        name: String,
        pipeline: String,
        release: String? = nil,
        executionRule: ExecutionRule = .endpoint,
        endpointURLPath: String?,
        tokens: [String] = [],
        maxIOBytes: Int? = nil,
        inputMappings: [CraftInputMappingConfiguration]? = nil,
        outputMappings: [CraftOutputMappingConfiguration]? = nil,
        schedule: ScheduleConfiguration? = nil
    ) {
        self.name = name
        self.pipeline = pipeline
        self.release = release
        self.executionRule = executionRule
        self.endpointURLPath = endpointURLPath
        self.tokens = tokens
        self.maxIOBytes = maxIOBytes
        self.inputMappings = inputMappings
        self.outputMappings = outputMappings
        self.schedule = schedule
    }
}

/// Where one pipeline input takes its value from (Craft AI's `InputSource`).
package struct CraftInputMappingConfiguration: Sendable, Equatable {
    package enum Source: Sendable, Equatable {
        /// The endpoint input of this name.
        case endpointInput(String)
        /// A constant (YAML read as `GatewayConfiguration.configValue` reads a schedule's inputs).
        case constant(Value)
        /// The gateway process's environment variable of this name (a string).
        case environmentVariable(String)
        /// No value.
        case null
    }

    package var pipelineInputName: String
    package var source: Source
    /// For `endpointInput`: a request without it is refused (unless `defaultValue` is set).
    package var isRequired: Bool
    /// For `endpointInput`: the value when the request has none.
    package var defaultValue: Value?

    package init(pipelineInputName: String, source: Source, isRequired: Bool = false, defaultValue: Value? = nil) {
        self.pipelineInputName = pipelineInputName
        self.source = source
        self.isRequired = isRequired
        self.defaultValue = defaultValue
    }
}

/// Where one pipeline output goes (Craft AI's `OutputDestination`).
package struct CraftOutputMappingConfiguration: Sendable, Equatable {
    package enum Destination: Sendable, Equatable {
        case endpointOutput(String)
        /// Dropped.
        case null
    }

    package var pipelineOutputName: String
    package var destination: Destination

    package init(pipelineOutputName: String, destination: Destination) {
        self.pipelineOutputName = pipelineOutputName
        self.destination = destination
    }
}
