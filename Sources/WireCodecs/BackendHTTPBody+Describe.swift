package import NIOCore
package import TriggerModel

/// The http transport's `Describe`: `POST {base}/describe` with `{"namespace","pipeline","release"?}`, answered
/// by `{"inputs":[{"name","data_type"}],"outputs":[...]}` (the JSON form of runner.proto's `DescribeResponse`).
extension BackendHTTPBody {
    package static func encodeDescribeRequest(_ ref: PipelineRef) -> ByteBuffer {
        var object: ValueObject = ["namespace": .string(ref.namespace), "pipeline": .string(ref.pipeline)]
        if let release = ref.release { object["release"] = .string(release) }
        return JSONValueCodec.encode(.object(object))
    }

    /// Throws `.invalidArgument` for a body that is not such an object.
    package static func decodeDescribeRequest(_ body: ByteBuffer, limits: CodecLimits) throws -> PipelineRef {
        let object = try JSONValueCodec.decodeObject(body, limits: limits, what: "describe request")
        guard case .string(let namespace)? = object["namespace"], !namespace.isEmpty,
            case .string(let pipeline)? = object["pipeline"], !pipeline.isEmpty
        else {
            throw GatewayError(.invalidArgument, "a describe request needs string \"namespace\" and \"pipeline\"")
        }
        return PipelineRef(namespace: namespace, pipeline: pipeline, release: object["release"]?.stringValue)
    }

    package static func encode(description: PipelineDescription) -> ByteBuffer {
        func list(_ parameters: [PipelineDescription.Parameter]) -> Value {
            .list(parameters.map { .object(["name": .string($0.name), "data_type": .string($0.dataType)]) })
        }
        return JSONValueCodec.encode(
            .object(["inputs": list(description.inputs), "outputs": list(description.outputs)]))
    }

    /// Throws `.invalidArgument` for a body that is not a description.
    package static func decodeDescription(_ body: ByteBuffer, limits: CodecLimits) throws -> PipelineDescription {
        let object = try JSONValueCodec.decodeObject(
            body, limits: limits.forBackendAnswers, what: "describe response")
        func list(_ key: String) throws -> [PipelineDescription.Parameter] {
            guard let value = object[key], value != .null else { return [] }
            guard case .list(let items) = value else {
                throw GatewayError(.invalidArgument, "describe response: \"\(key)\" must be a list")
            }
            return try items.map { item in
                guard case .object(let o) = item, case .string(let name)? = o["name"], !name.isEmpty,
                    case .string(let type)? = o["data_type"]
                else {
                    throw GatewayError(
                        .invalidArgument, "describe response: each of \"\(key)\" needs name and data_type")
                }
                return PipelineDescription.Parameter(name: name, dataType: type)
            }
        }
        return PipelineDescription(inputs: try list("inputs"), outputs: try list("outputs"))
    }
}
