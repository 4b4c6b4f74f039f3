import GatewayConfig
import TriggerModel

extension CraftAnswer {
    /// A deployment's `inputs_mapping` as craft-ai-sdk's `get_deployment` documents it: per pipeline input
    /// `{pipeline_input_name, data_type, description}` and its one source key (`endpoint_input_name`,
    /// `constant_value`, `environment_variable_name` or `is_null`), with `is_required` and `default_value` when set.
    /// `data_type` is what `craft.pipelines` declares (null when it does not); `description` is null.
    ///
    /// Secrets: an environment variable's value is never shown, here or in any read of an execution
    /// (`TriggerRequest.hiddenInputNames`); its name is configuration and is. A constant's or default's value is the
    /// operator's too and no read shows it (security review 60, M4: executions no longer show them either): it is
    /// null here, with `constant_value_redacted` / `default_value_redacted` true, to every caller.
    static func inputMappings(_ deployment: CraftDeploymentConfiguration, declared: CraftPipelineConfiguration?)
        -> Value
    {
        .list(
            (deployment.inputMappings ?? []).map { mapping in
                let name = mapping.pipelineInputName
                var item: ValueObject = [
                    "pipeline_input_name": .string(name),
                    "data_type": declared?.inputs.first { $0.name == name }.map { .string($0.dataType) } ?? .null,
                    "description": .null,
                ]
                func redacted(_ key: String) {
                    item[key] = .null
                    item[key + "_redacted"] = .bool(true)
                }
                switch mapping.source {
                case .endpointInput(let endpointName): item["endpoint_input_name"] = .string(endpointName)
                case .constant: redacted("constant_value")
                case .environmentVariable(let variable): item["environment_variable_name"] = .string(variable)
                case .null: item["is_null"] = .bool(true)
                }
                if mapping.isRequired { item["is_required"] = .bool(true) }
                if mapping.defaultValue != nil { redacted("default_value") }
                return .object(item)
            })
    }

    /// A deployment's `outputs_mapping`: per mapped pipeline output `{pipeline_output_name, data_type, description}`
    /// and `endpoint_output_name` or `is_null` (outputs no mapping mentions pass under their own names).
    static func outputMappings(_ deployment: CraftDeploymentConfiguration, declared: CraftPipelineConfiguration?)
        -> Value
    {
        .list(
            (deployment.outputMappings ?? []).map { mapping in
                let name = mapping.pipelineOutputName
                var item: ValueObject = [
                    "pipeline_output_name": .string(name),
                    "data_type": declared?.outputs.first { $0.name == name }.map { .string($0.dataType) } ?? .null,
                    "description": .null,
                ]
                switch mapping.destination {
                case .endpointOutput(let endpointName): item["endpoint_output_name"] = .string(endpointName)
                case .null: item["is_null"] = .bool(true)
                }
                return .object(item)
            })
    }
}
