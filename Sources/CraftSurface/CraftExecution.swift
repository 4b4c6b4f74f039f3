package import GatewayConfig
package import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The labels an execution keeps (`TriggerRequest.labels`): what makes an async operation a Craft AI
/// execution of a deployment, and how its outputs are shown.
package enum CraftLabels {
    /// The deployment the execution was triggered through (absent for `run_pipeline`).
    package static let deployment = TriggerRequest.deploymentLabel
    /// The output mapping, JSON (absent: outputs pass under their own names).
    package static let outputsMapping = "craft.outputs_mapping"
    /// The non-file I/O cap in force when it was created, bytes.
    package static let ioCap = "craft.io_cap"
}

/// How a Craft AI execution is made, whoever starts it: `run_pipeline`, an endpoint or
/// `POST /api/v1/deployments/{name}/executions` (the REST surface), or a periodic deployment's schedule tick.
package enum CraftExecution {
    /// The inputs or outputs of an execution as the Craft AI API shows them, name → value, from an operation's
    /// items (`TriggerRequest.inputs`' variables, `TriggerResult.outputs`). A Craft AI execution is one run:
    /// one item is shown as it is. An operation of several items (an Instill batch trigger read here) shows
    /// each name once, its value the list of the items' values in item order (null for an item without it),
    /// so every item can be read through the Craft AI client (review 17: only the first one was), as the
    /// `array` it then is. No items is an empty object.
    package static func values(of items: [ValueObject]) -> ValueObject {
        guard items.count > 1 else { return items.first ?? ValueObject() }
        var names: [String] = []
        var seen = Set<String>()
        for item in items {
            for name in item.keys where seen.insert(name).inserted { names.append(name) }
        }
        return ValueObject(
            uniqueKeyEntries: names.map { name in (key: name, value: .list(items.map { $0[name] ?? .null })) })
    }

    /// The async request of a new execution: the cap on the inputs as sent, then the input mappings, then
    /// the labels (deployment, output mapping, cap) that `executions/latest` and the outputs reads rely on.
    ///
    /// - Parameters:
    ///   - inputs: the endpoint inputs (the body of an endpoint trigger).
    ///   - environment: the source of `environment_variable_name` mappings (the gateway process's).
    ///   - declared: the pipeline's `craft.pipelines` entry, whose inputs' `data_type`s the pipeline inputs (after
    ///     the mappings) must have (``checkDeclaredTypes(_:of:)``); nil: none declared.
    /// - Throws: `GatewayError(.payloadTooLarge)` over the cap (`CraftIOCap`),
    ///   `.invalidArgument` for a missing required input or one not of its declared type, or an output mapping onto
    ///   the name of a declared output no mapping mentions (``CraftMappings/shadowedOutputs(_:)``),
    ///   `.failedPrecondition` for an unset variable.
    package static func request(
        ref: PipelineRef,
        inputs: ValueObject,
        mappings: CraftMappings,
        deployment: CraftDeploymentConfiguration?,
        cap: CraftIOCap,
        principal: String?,
        requestID: String,
        declared: CraftPipelineConfiguration? = nil,
        environment: (String) -> String? = CraftExecution.processEnvironment
    ) throws(GatewayError) -> TriggerRequest {
        try cap.checkInputs(inputs)
        let (pipelineInputs, operatorFilled) = try mappings.mapped(from: inputs, environment: environment)
        if let declared {
            try checkDeclaredTypes(pipelineInputs, of: declared)
            // Diff review 59, M4 (a deployment's mapping was refused with the configuration already).
            if let clash = mappings.shadowedOutputs(declared.outputs.map(\.name)).first {
                throw GatewayError(
                    .invalidArgument,
                    "outputs_mapping sends pipeline output \"\(clash.mappedFrom)\" to \"\(clash.output)\", which is also "
                        + "the name of output \"\(clash.output)\" of pipeline \(declared.name) (craft.pipelines) that no "
                        + "mapping renames or drops: the result could hold only one of them; map \"\(clash.output)\" too"
                )
            }
        }
        var request = TriggerRequest(
            ref: ref,
            mode: .async,
            inputs: [TriggerInput(variables: pipelineInputs)],
            principal: principal,
            requestID: requestID
        )
        request.labels[CraftLabels.ioCap] = String(cap.limit)
        // A deployment's mappings are the operator's; a run's (`run_pipeline`'s `inputs_mapping`) its caller's,
        // whose constants are its own to read back (and which map no environment variable).
        request.hiddenInputNames = deployment == nil ? mappings.environmentInputNames : operatorFilled
        if let deployment { request.labels[CraftLabels.deployment] = deployment.name }
        if let outputs = mappings.outputsLabel { request.labels[CraftLabels.outputsMapping] = outputs }
        return request
    }

    /// Whether `value` is of Craft AI's `data_type` `type` (`INPUT_OUTPUT_TYPES` of craft-ai-sdk: `string`,
    /// `number`, `boolean`, `json`, `array`, `file`): `json` is any JSON value (not a file), `file` a file's bytes
    /// (a multipart part with a file name, or `bytes`/`BytesIO` in the SDK). `null` is every type's: an input
    /// mapped `is_null`, or one the caller leaves empty on purpose.
    package static func value(_ value: Value, isOf type: String) -> Bool {
        switch (type, value) {
        case (_, .null): true
        case ("string", .string), ("number", .number), ("number", .largeInteger), ("boolean", .bool),
            ("array", .list), ("file", .blob):
            true
        case ("json", let value):
            if case .blob = value { false } else { true }
        default: false
        }
    }

    /// The `data_type` a value shows (the type `value(_:isOf:)` names it by in a refusal; `null` and objects are
    /// `json`).
    package static func dataType(of value: Value) -> String {
        switch value {
        case .blob: "file"
        case .string: "string"
        case .number, .largeInteger: "number"
        case .bool: "boolean"
        case .list: "array"
        case .object, .null: "json"
        }
    }

    /// Checks the pipeline inputs against the `data_type`s `pipeline` declares (review 23, I2: `n: number` ran
    /// with `"abc"`); inputs it does not declare pass as they are.
    ///
    /// - Throws: `.invalidArgument` (400) naming the first input, in declaration order, that is not of its type,
    ///   with both types.
    package static func checkDeclaredTypes(_ inputs: ValueObject, of pipeline: CraftPipelineConfiguration)
        throws(GatewayError)
    {
        for parameter in pipeline.inputs {
            guard let value = inputs[parameter.name], !Self.value(value, isOf: parameter.dataType) else { continue }
            throw GatewayError(
                .invalidArgument,
                "input \"\(parameter.name)\" of pipeline \(pipeline.name) is declared \(parameter.dataType) "
                    + "(craft.pipelines), got \(dataType(of: value))")
        }
    }

    /// Checks every deployment's configured values, `constant_value` and `default_value`, against the
    /// `data_type` its pipeline declares (`craft.pipelines`) for the pipeline input the mapping sets: one of the
    /// wrong type failed every trigger of an endpoint deployment with a 400 about an input its caller never sent
    /// (SDK review 56, L1). A periodic deployment's inputs are checked whole by ``schedules(of:source:environment:)``.
    ///
    /// - Throws: `ConfigError` at `craft.deployments[i].input_mappings[j].constant_value` (or `.default_value`),
    ///   naming the input and both types.
    package static func checkConfiguredValues(of craft: CraftConfiguration, source: String) throws(ConfigError) {
        for (i, deployment) in (craft.deployments ?? []).enumerated() {
            guard let pipeline = craft.pipeline(named: deployment.pipeline) else { continue }
            for (j, mapping) in (deployment.inputMappings ?? []).enumerated() {
                guard let parameter = pipeline.inputs.first(where: { $0.name == mapping.pipelineInputName }) else {
                    continue
                }
                var configured: [(key: String, value: Value)] = []
                if case .constant(let value) = mapping.source { configured.append(("constant_value", value)) }
                if let value = mapping.defaultValue { configured.append(("default_value", value)) }
                for (key, value) in configured where !Self.value(value, isOf: parameter.dataType) {
                    throw ConfigError(
                        source: source, path: "craft.deployments[\(i)].input_mappings[\(j)].\(key)",
                        message: "is \(dataType(of: value)), but input \"\(parameter.name)\" of pipeline "
                            + "\(pipeline.name) is declared \(parameter.dataType) (craft.pipelines)")
                }
            }
        }
    }

    /// The gateway process's environment variable `name`.
    package static func processEnvironment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The schedule of every periodic deployment of `craft`, each tick an execution of its deployment: the
    /// configured inputs through the deployment's input mappings (read once here: the process's environment
    /// does not change while it runs), and the execution's labels. Runs belong to no principal, as every
    /// schedule's do.
    ///
    /// - Throws: `ConfigError` at `craft.deployments[i].inputs` when the inputs cannot become an execution
    ///   (over the cap, a required input missing, an unset environment variable).
    package static func schedules(
        of craft: CraftConfiguration,
        source: String,
        environment: (String) -> String? = CraftExecution.processEnvironment
    ) throws(ConfigError) -> [ScheduleConfiguration] {
        var schedules: [ScheduleConfiguration] = []
        for (i, deployment) in (craft.deployments ?? []).enumerated() {
            guard var schedule = deployment.schedule else { continue }
            do {
                let execution = try Self.request(
                    ref: schedule.ref,
                    inputs: schedule.inputs.first?.variables ?? ValueObject(),
                    mappings: CraftMappings(deployment: deployment),
                    deployment: deployment,
                    cap: CraftIOCap(limit: deployment.maxIOBytes ?? craft.maxIOBytes),
                    principal: nil,
                    requestID: "",
                    declared: craft.pipeline(named: deployment.pipeline),
                    environment: environment
                )
                schedule.inputs = execution.inputs
                schedule.labels = execution.labels
            } catch {
                let message = error.message
                throw ConfigError(source: source, path: "craft.deployments[\(i)].inputs", message: message)
            }
            schedules.append(schedule)
        }
        return schedules
    }
}
