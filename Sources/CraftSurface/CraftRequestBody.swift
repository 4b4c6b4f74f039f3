package import NIOCore
package import TriggerModel
package import WireCodecs

/// A request body of the Craft AI surface, as the frontend collected it.
package enum CraftRequestBody: Sendable {
    /// `application/json` (or no content type).
    case json(ByteBuffer)
    /// `application/x-www-form-urlencoded`.
    case form(ByteBuffer)
    /// `multipart/form-data`, as plain parts.
    case multipart([MultipartPart])
}

/// What a `run_pipeline` body carries: the inputs (non-file ones from `json_inputs`, files from their parts)
/// and the optional mappings.
package struct CraftPipelineRun: Sendable {
    package var inputs: ValueObject
    package var mappings: CraftMappings
}

extension CraftRequestBody {
    /// `POST /api/v1/pipelines/{name}/run` (CLIENTS.md §3.4): a form with `json_inputs` (a JSON object as
    /// text), or multipart with a `json_inputs` field and one file part per file input; either may add
    /// `inputs_mapping` and `outputs_mapping` fields (JSON lists).
    ///
    /// - Throws: `GatewayError(.invalidArgument)` for a missing or malformed field, an unknown field, or a file
    ///   input that is also in `json_inputs`; `.unsupportedMediaType` for a JSON body.
    package func pipelineRun(limits: CodecLimits) throws -> CraftPipelineRun {
        var fields: [(name: String, value: ByteBuffer)] = []
        var files: [(name: String, blob: Blob)] = []
        switch self {
        case .json:
            throw GatewayError(
                .unsupportedMediaType,
                "a pipeline run takes a form (json_inputs=...) or multipart/form-data with a json_inputs field"
            )
        case .form(let body):
            fields = try FormURLEncoded.decode(body).map { ($0.name, ByteBuffer(string: $0.value)) }
        case .multipart(let parts):
            for part in parts {
                if part.isFile {
                    files.append((part.name, Self.blob(of: part)))
                } else {
                    fields.append((part.name, try part.utf8Text()))
                }
            }
        }
        var inputs = ValueObject()
        var mappings = CraftMappings()
        var seen = Set<String>()
        // `limits.maxJSONMembers` holds for the fields together, as for one JSON body.
        var members = 0
        for field in fields {
            guard seen.insert(field.name).inserted else {
                throw GatewayError(.invalidArgument, "field \"\(field.name)\" is sent twice")
            }
            switch field.name {
            case "json_inputs":
                guard
                    case .object(let object) = try JSONValueCodec.decode(
                        field.value, limits: limits, path: "json_inputs", members: &members, dataURIs: .text)
                else {
                    throw GatewayError(.invalidArgument, "json_inputs must be a JSON object of input names to values")
                }
                inputs = object
            case "inputs_mapping":
                mappings.inputs = try CraftMappings.inputMappings(json: field.value, limits: limits, members: &members)
            case "outputs_mapping":
                mappings.outputs = try CraftMappings.outputMappings(
                    json: field.value, limits: limits, members: &members)
            default:
                throw GatewayError(
                    .invalidArgument,
                    "unknown field \"\(field.name)\": expected json_inputs, inputs_mapping, outputs_mapping or file parts"
                )
            }
        }
        for file in files {
            guard inputs[file.name] == nil else {
                throw GatewayError(.invalidArgument, "input \"\(file.name)\" is sent both in json_inputs and as a file")
            }
            inputs[file.name] = .blob(file.blob)
        }
        return CraftPipelineRun(inputs: inputs, mappings: mappings)
    }

    /// `POST /endpoints/{path}` and `POST /api/v1/deployments/{name}/executions` (CLIENTS.md §3.5): a JSON
    /// object of inputs (an empty body is no inputs), or multipart whose file parts are file inputs and whose
    /// other fields hold JSON-encoded values (a field that is not JSON is taken as a string, as a hand-written
    /// form would send it).
    ///
    /// - Throws: `GatewayError(.invalidArgument)` for a body that is not an object or an input sent twice;
    ///   `.unsupportedMediaType` for a form.
    package func endpointInputs(limits: CodecLimits) throws -> ValueObject {
        switch self {
        case .json(let body):
            guard body.readableBytes > 0 else { return ValueObject() }
            return try JSONValueCodec.decodeObject(body, limits: limits, what: "request body", dataURIs: .text)
        case .form:
            throw GatewayError(
                .unsupportedMediaType,
                "an endpoint takes application/json or multipart/form-data, not a urlencoded form"
            )
        case .multipart(let parts):
            var inputs = ValueObject()
            var members = 0  // `limits.maxJSONMembers` holds for the parts together
            for part in parts {
                guard inputs[part.name] == nil else {
                    throw GatewayError(.invalidArgument, "input \"\(part.name)\" is sent twice")
                }
                if part.isFile {
                    inputs[part.name] = .blob(Self.blob(of: part))
                    continue
                }
                let text = try part.utf8Text()
                do {
                    inputs[part.name] = try JSONValueCodec.decode(
                        text, limits: limits, path: part.name, members: &members, dataURIs: .text)
                } catch  where members > limits.maxJSONMembers {
                    throw error  // the body is over the width cap: refused, not taken as a string
                } catch {
                    inputs[part.name] = .string(String(buffer: text))
                }
            }
            return inputs
        }
    }

    private static func blob(of part: MultipartPart) -> Blob {
        Blob(contentType: part.contentType ?? Blob.defaultContentType, fileName: part.fileName, bytes: part.body)
    }
}
