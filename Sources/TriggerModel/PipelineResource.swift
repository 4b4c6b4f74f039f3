/// A routed pipeline or pipeline release as Instill's `GetNamespacePipeline` / `GetNamespacePipelineRelease`
/// (gRPC, and `GET /v1beta/{ns-kind}/{ns}/pipelines/{id}[/releases/{r}]`) show it: the fields the gateway can
/// fill truthfully, the rest of Instill's `Pipeline` message left unset.
package struct PipelineResource: Sendable, Equatable {
    /// `namespaces/{ns}/pipelines/{id}`, or `namespaces/{ns}/pipelines/{p}/releases/{id}` for a release.
    package var name: String
    /// Stable, derived from `name` (`ResourceUID.v5`).
    package var uid: String
    /// The pipeline's or release's own id (the last segment of `name`).
    package var id: String
    /// The owning namespace as a user or organization: `users/{ns}` or `organizations/{ns}`.
    package var ownerName: String
    /// The releases routes name for this pipeline (empty for a release itself).
    package var releases: [PipelineResource]
    /// JSON schemas of the inputs and outputs (Instill's `DataSpecification`), from the runner's description.
    package var inputSchema: ValueObject
    package var outputSchema: ValueObject

    package init(
        name: String,
        uid: String,
        id: String,
        ownerName: String,
        releases: [PipelineResource] = [],
        inputSchema: ValueObject,
        outputSchema: ValueObject
    ) {
        self.name = name
        self.uid = uid
        self.id = id
        self.ownerName = ownerName
        self.releases = releases
        self.inputSchema = inputSchema
        self.outputSchema = outputSchema
    }
}

extension PipelineDescription {
    /// A JSON Schema (draft 2020-12 vocabulary, as Instill's `DataSpecification` holds) of `parameters`: an
    /// object with one property per parameter, in order. Each property has the JSON `type` of its data type
    /// (`file` is a string: a data URI on REST, `bytes` on gRPC; `json` any value, so no `type`) and keeps the
    /// runner's own data type verbatim under `instillFormat`, the key Instill's schemas use for it. No
    /// parameters: an object that takes any properties (the runner declared none).
    package static func jsonSchema(of parameters: [Parameter]) -> ValueObject {
        var properties = ValueObject()
        for parameter in parameters {
            var property = ValueObject()
            property["title"] = .string(parameter.name)
            switch parameter.dataType {
            case "string", "file": property["type"] = .string("string")
            case "number": property["type"] = .string("number")
            case "boolean": property["type"] = .string("boolean")
            case "array": property["type"] = .string("array")
            default: break
            }
            property["instillFormat"] = .string(parameter.dataType)
            properties[parameter.name] = .object(property)
        }
        var schema = ValueObject()
        schema["type"] = .string("object")
        schema["properties"] = .object(properties)
        if parameters.isEmpty { schema["additionalProperties"] = .bool(true) }
        return schema
    }
}
