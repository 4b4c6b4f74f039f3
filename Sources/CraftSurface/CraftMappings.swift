package import GatewayConfig
package import NIOCore
package import TriggerModel
package import WireCodecs

/// Craft AI input and output mappings (its `InputSource` and `OutputDestination`): how a deployment's endpoint
/// inputs become pipeline inputs, and pipeline outputs become endpoint outputs.
///
/// The same model serves a deployment's configured mappings and the `inputs_mapping` / `outputs_mapping` form
/// fields `run_pipeline` sends (JSON lists of `{pipeline_input_name, endpoint_input_name | constant_value |
/// environment_variable_name | is_null, is_required, default_value}` and `{pipeline_output_name,
/// endpoint_output_name | is_null}`, CLIENTS.md §3.4). `datastore_path` sources and destinations are refused:
/// the gateway has no datastore.
package struct CraftMappings: Sendable, Equatable {
    package enum InputSource: Sendable, Equatable {
        case endpointInput(String)
        case constant(Value)
        case environmentVariable(String)
        case null
    }

    package struct InputMapping: Sendable, Equatable {
        package var pipelineInputName: String
        package var source: InputSource
        package var isRequired: Bool
        package var defaultValue: Value?

        package init(
            pipelineInputName: String, source: InputSource, isRequired: Bool = false, defaultValue: Value? = nil
        ) {
            self.pipelineInputName = pipelineInputName
            self.source = source
            self.isRequired = isRequired
            self.defaultValue = defaultValue
        }
    }

    package enum OutputDestination: Sendable, Equatable {
        case endpointOutput(String)
        case null
    }

    package struct OutputMapping: Sendable, Equatable {
        package var pipelineOutputName: String
        package var destination: OutputDestination

        package init(pipelineOutputName: String, destination: OutputDestination) {
            self.pipelineOutputName = pipelineOutputName
            self.destination = destination
        }
    }

    /// nil: inputs pass under their own names.
    package var inputs: [InputMapping]?
    /// nil: outputs pass under their own names.
    package var outputs: [OutputMapping]?

    package init(inputs: [InputMapping]? = nil, outputs: [OutputMapping]? = nil) {
        self.inputs = inputs
        self.outputs = outputs
    }

    /// A deployment's configured mappings.
    package init(deployment: CraftDeploymentConfiguration) {
        self.inputs = deployment.inputMappings?.map { mapping in
            let source: InputSource
            switch mapping.source {
            case .endpointInput(let name): source = .endpointInput(name)
            case .constant(let value): source = .constant(value)
            case .environmentVariable(let name): source = .environmentVariable(name)
            case .null: source = .null
            }
            return InputMapping(
                pipelineInputName: mapping.pipelineInputName,
                source: source,
                isRequired: mapping.isRequired,
                defaultValue: mapping.defaultValue
            )
        }
        self.outputs = deployment.outputMappings?.map { mapping in
            switch mapping.destination {
            case .endpointOutput(let name):
                OutputMapping(pipelineOutputName: mapping.pipelineOutputName, destination: .endpointOutput(name))
            case .null: OutputMapping(pipelineOutputName: mapping.pipelineOutputName, destination: .null)
            }
        }
    }

    // MARK: Inputs

    /// The pipeline's inputs for the endpoint's `inputs`.
    ///
    /// Each mapped pipeline input takes its value from its source: the endpoint input of that name (else
    /// `default_value`; else, when `is_required`, the request is refused; else no value), a constant, an
    /// environment variable of the gateway process (refused when unset), or no value (`is_null`). Endpoint
    /// inputs that no mapping reads and whose name no mapping sets pass under their own names, as
    /// `run_pipeline`'s partial `inputs_mapping` expects.
    ///
    /// - Throws: `GatewayError(.invalidArgument)` for a missing required input, `.failedPrecondition` for an
    ///   unset environment variable.
    package func pipelineInputs(
        from inputs: ValueObject,
        environment: (String) -> String?
    ) throws(GatewayError) -> ValueObject {
        try mapped(from: inputs, environment: environment).inputs
    }

    /// ``pipelineInputs(from:environment:)``, and the pipeline inputs the mappings filled rather than the caller:
    /// from the environment, a `constant_value`, or a `default_value` for an endpoint input left out. Their values
    /// are the operator's, which README says may be secrets (`get_deployment` shows them redacted), so a
    /// deployment's execution hides them from every read (``TriggerRequest/hiddenInputNames``; security review
    /// 60, M4: a periodic deployment's runs are every token holder's to read). Decided here, where the value is
    /// chosen, so the two cannot disagree (diff review 60, L-5).
    package func mapped(
        from inputs: ValueObject,
        environment: (String) -> String?
    ) throws(GatewayError) -> (inputs: ValueObject, operatorFilled: Set<String>) {
        guard let mappings = self.inputs else { return (inputs, []) }
        var result: [(key: String, value: Value)] = []
        var consumed = Set<String>()
        var operatorFilled = Set<String>()
        for mapping in mappings {
            consumed.insert(mapping.pipelineInputName)
            switch mapping.source {
            case .endpointInput(let name):
                consumed.insert(name)
                if let value = inputs[name] {
                    result.append((mapping.pipelineInputName, value))
                } else if let value = mapping.defaultValue {
                    result.append((mapping.pipelineInputName, value))
                    operatorFilled.insert(mapping.pipelineInputName)
                } else if mapping.isRequired {
                    throw GatewayError(.invalidArgument, "input \"\(name)\" is required")
                }
            case .constant(let value):
                result.append((mapping.pipelineInputName, value))
                operatorFilled.insert(mapping.pipelineInputName)
            case .environmentVariable(let name):
                guard let value = environment(name) else {
                    throw GatewayError(
                        .failedPrecondition,
                        "input \"\(mapping.pipelineInputName)\" comes from the environment variable \(name), which is not set"
                    )
                }
                result.append((mapping.pipelineInputName, .string(value)))
                operatorFilled.insert(mapping.pipelineInputName)
            case .null:
                break
            }
        }
        for entry in inputs where !consumed.contains(entry.key) { result.append((entry.key, entry.value)) }
        return (ValueObject(result), operatorFilled)
    }

    /// The pipeline inputs filled from the gateway's environment (`environment_variable_name`): their values are
    /// the operator's, so no read shows them (``TriggerRequest/hiddenInputNames``; security review, M1).
    package var environmentInputNames: Set<String> {
        var names = Set<String>()
        for mapping in self.inputs ?? [] {
            if case .environmentVariable = mapping.source { names.insert(mapping.pipelineInputName) }
        }
        return names
    }

    // MARK: Outputs

    /// One pipeline output as a client sees it.
    package struct MappedOutput: Sendable, Equatable {
        package var pipelineOutputName: String
        /// nil for an output the mapping drops (`is_null`).
        package var endpointOutputName: String?
        /// Craft AI's `mapping_type`: `endpoint` (passed on by a mapping, or any output of a deployment's
        /// execution), `run` (an output no mapping mentions, of a `run_pipeline` execution) or `is_null` (dropped).
        package var mappingType: String
        package var value: Value
    }

    /// Every pipeline output with where it goes: a mapped output where its mapping says (renamed, or dropped
    /// by `is_null`), any other under its own name (as `run_pipeline`'s partial `outputs_mapping` expects), its
    /// `mapping_type` `unmappedType`: `run` for a `run_pipeline` execution (as its inputs read, and as the SDK's
    /// `get_pipeline_execution` documents a run's outputs: review 59, F4), `endpoint` for a deployment's.
    ///
    /// An unmapped output whose name a mapping sends another output to (``shadowedOutputs(_:)``) is left out: the
    /// mapped one wins (diff review 59, M4). Both in the result, the last one won without a word and a file's URL
    /// named either. The mapping says what the operator or the client asked for, and the unmapped output only
    /// passes by default; refusing the execution instead would fail every run of a deployment whose runner's
    /// `Describe` grew an output of that name, which nobody asked for. The configuration (`craft.pipelines`) and a
    /// run's mapping refuse the clash when the pipeline's outputs are declared; the reads log it once.
    package func mappedOutputs(_ outputs: ValueObject, unmappedType: String = "endpoint") -> [MappedOutput] {
        let shadowed = Set(shadowedOutputs(outputs.keys).map(\.output))
        return outputs.compactMap { entry in
            switch self.outputs?.first(where: { $0.pipelineOutputName == entry.key })?.destination {
            case .endpointOutput(let name)?:
                return MappedOutput(
                    pipelineOutputName: entry.key, endpointOutputName: name, mappingType: "endpoint", value: entry.value
                )
            case .null?:
                return MappedOutput(
                    pipelineOutputName: entry.key, endpointOutputName: nil, mappingType: "is_null", value: entry.value)
            case nil:
                if shadowed.contains(entry.key) { return nil }
                return MappedOutput(
                    pipelineOutputName: entry.key, endpointOutputName: entry.key, mappingType: unmappedType,
                    value: entry.value)
            }
        }
    }

    /// The outputs among `outputNames` that no mapping mentions but whose name a mapping sends another output to,
    /// each with that output (`CraftConfiguration.shadowedOutputs(of:by:)`); empty without an output mapping.
    package func shadowedOutputs(_ outputNames: some Sequence<String>) -> [(output: String, mappedFrom: String)] {
        guard let outputs else { return [] }
        return CraftConfiguration.shadowedOutputs(
            of: outputNames,
            by: outputs.map { mapping in
                switch mapping.destination {
                case .endpointOutput(let name): (pipelineOutput: mapping.pipelineOutputName, endpointOutput: name)
                case .null: (pipelineOutput: mapping.pipelineOutputName, endpointOutput: nil)
                }
            })
    }

    // MARK: The SDK's form fields

    /// The keys of an `InputSource` that each name where an input comes from: one at most (a null key, or
    /// `is_null: false`, is not given; the SDK leaves unset ones out).
    private static let inputSourceKeys = [
        "endpoint_input_name", "constant_value", "environment_variable_name", "is_null", "datastore_path",
    ]

    /// Parses `run_pipeline`'s `inputs_mapping` field: a JSON list of `InputSource` dicts.
    /// - Throws: `GatewayError(.invalidArgument)` naming the offending element, also for an
    ///   `environment_variable_name` (a client may not read the gateway's environment, review 23 H1);
    ///   `.unimplemented` for a `datastore_path`.
    package static func inputMappings(json: ByteBuffer, limits: CodecLimits) throws -> [InputMapping] {
        var members = 0
        return try inputMappings(json: json, limits: limits, members: &members)
    }

    /// As `inputMappings(json:limits:)`, one field of a body: `members` counts toward `limits.maxJSONMembers`
    /// across its fields (`JSONValueCodec.decode(_:limits:path:members:)`).
    package static func inputMappings(
        json: ByteBuffer, limits: CodecLimits, members: inout Int
    ) throws -> [InputMapping] {
        guard
            case .list(let items) = try JSONValueCodec.decode(
                json, limits: limits, path: "inputs_mapping", members: &members, dataURIs: .text)
        else {
            throw GatewayError(.invalidArgument, "inputs_mapping must be a JSON list")
        }
        var seen: Set<String> = []
        return try items.enumerated().map { (i, item) throws(GatewayError) in
            guard case .object(let o) = item, case .string(let name)? = o["pipeline_input_name"], !name.isEmpty else {
                throw GatewayError(.invalidArgument, "inputs_mapping[\(i)] needs a pipeline_input_name")
            }
            // As `craft.deployments` refuses them (review 59, F10): a second mapping of one input, or one mapping
            // with two sources, would have one win without a word.
            guard seen.insert(name).inserted else {
                throw GatewayError(.invalidArgument, "inputs_mapping[\(i)]: duplicate pipeline_input_name \"\(name)\"")
            }
            let given = Self.inputSourceKeys.filter { key in
                switch o[key] {
                case nil, .null?: false
                case .bool(false)? where key == "is_null": false
                default: true
                }
            }
            guard given.count <= 1 else {
                throw GatewayError(
                    .invalidArgument, "inputs_mapping[\(i)] has more than one source (\(given.joined(separator: ", ")))"
                )
            }
            let source: InputSource
            if case .string(let endpointName)? = o["endpoint_input_name"] {
                // As `craft.deployments` refuses it (review 59, F8).
                if let reason = CraftConfiguration.unreadableNameReason(endpointName) {
                    throw GatewayError(.invalidArgument, "inputs_mapping[\(i)]: endpoint_input_name \(reason)")
                }
                source = .endpointInput(endpointName)
            } else if let constant = o["constant_value"], constant != .null {
                source = .constant(constant)
            } else if o["environment_variable_name"].map({ $0 != .null }) == true {
                // Review 23 H1: resolved against the gateway process's environment, a client's own mapping would
                // read any variable of it (credentials, `PGPASSWORD`). Craft AI's names the project's variables,
                // which this gateway does not keep; a deployment the operator configures may still map one.
                throw GatewayError(
                    .invalidArgument,
                    "inputs_mapping[\(i)]: environment_variable_name is not accepted in a run's mapping: the gateway "
                        + "does not expose its environment (a deployment in craft.deployments may map a variable)")
            } else if case .bool(true)? = o["is_null"] {
                source = .null
            } else if let path = o["datastore_path"], path != .null {
                throw GatewayError(
                    .unimplemented, "inputs_mapping[\(i)]: datastore_path is not supported by this gateway")
            } else {
                throw GatewayError(
                    .invalidArgument,
                    "inputs_mapping[\(i)] needs one of endpoint_input_name, constant_value, is_null"
                )
            }
            var mapping = InputMapping(pipelineInputName: name, source: source)
            if case .bool(let required)? = o["is_required"] { mapping.isRequired = required }
            if let value = o["default_value"], value != .null { mapping.defaultValue = value }
            return mapping
        }
    }

    /// Parses `run_pipeline`'s `outputs_mapping` field: a JSON list of `OutputDestination` dicts.
    package static func outputMappings(json: ByteBuffer, limits: CodecLimits) throws -> [OutputMapping] {
        var members = 0
        return try outputMappings(json: json, limits: limits, members: &members)
    }

    /// As `outputMappings(json:limits:)`, one field of a body (see `inputMappings(json:limits:members:)`).
    /// `checkingNames` false: an execution's stored label (``init(outputsLabel:)``), whose names were taken
    /// when it was made, also by a gateway before names were checked (review 59, F8): it stays readable.
    package static func outputMappings(
        json: ByteBuffer, limits: CodecLimits, members: inout Int, checkingNames: Bool = true
    ) throws -> [OutputMapping] {
        guard
            case .list(let items) = try JSONValueCodec.decode(
                json, limits: limits, path: "outputs_mapping", members: &members, dataURIs: .text)
        else {
            throw GatewayError(.invalidArgument, "outputs_mapping must be a JSON list")
        }
        var seen: Set<String> = []
        var endpointNames: Set<String> = []
        return try items.enumerated().map { (i, item) throws(GatewayError) in
            guard case .object(let o) = item, case .string(let name)? = o["pipeline_output_name"], !name.isEmpty else {
                throw GatewayError(.invalidArgument, "outputs_mapping[\(i)] needs a pipeline_output_name")
            }
            guard seen.insert(name).inserted else {
                throw GatewayError(
                    .invalidArgument, "outputs_mapping[\(i)]: duplicate pipeline_output_name \"\(name)\"")
            }
            if case .string(let endpointName)? = o["endpoint_output_name"] {
                if checkingNames, let reason = CraftConfiguration.unreadableNameReason(endpointName) {
                    throw GatewayError(.invalidArgument, "outputs_mapping[\(i)]: endpoint_output_name \(reason)")
                }
                // Two outputs under one name: the result could hold only one of them (review 59, F2).
                guard endpointNames.insert(endpointName).inserted else {
                    throw GatewayError(
                        .invalidArgument, "outputs_mapping[\(i)]: duplicate endpoint_output_name \"\(endpointName)\"")
                }
                return OutputMapping(pipelineOutputName: name, destination: .endpointOutput(endpointName))
            }
            if case .bool(true)? = o["is_null"] { return OutputMapping(pipelineOutputName: name, destination: .null) }
            if let path = o["datastore_path"], path != .null {
                throw GatewayError(
                    .unimplemented, "outputs_mapping[\(i)]: datastore_path is not supported by this gateway")
            }
            throw GatewayError(.invalidArgument, "outputs_mapping[\(i)] needs one of endpoint_output_name, is_null")
        }
    }

    // MARK: Keeping the output mapping with an execution

    /// The output mapping as the label an execution keeps (`craft.outputs_mapping`), JSON; nil without one.
    package var outputsLabel: String? {
        outputsList.map { String(buffer: JSONValueCodec.encode(.list($0))) }
    }

    /// The output mapping in Craft AI's shape (`{pipeline_output_name, endpoint_output_name | is_null}`,
    /// craft-ai-sdk's `OutputDestination.to_dict`); nil without one.
    var outputsList: [Value]? {
        outputs?.map { mapping in
            var o: ValueObject = ["pipeline_output_name": .string(mapping.pipelineOutputName)]
            switch mapping.destination {
            case .endpointOutput(let name): o["endpoint_output_name"] = .string(name)
            case .null: o["is_null"] = .bool(true)
            }
            return .object(o)
        }
    }

    /// The mappings an execution's label describes (only outputs: inputs were applied when it was created).
    package init(outputsLabel: String?) throws {
        self.inputs = nil
        self.outputs = try outputsLabel.map { label in
            var members = 0
            return try Self.outputMappings(
                json: ByteBuffer(string: label), limits: .defaults, members: &members, checkingNames: false)
        }
    }
}
