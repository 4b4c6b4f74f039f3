/// The three generations of Instill's public pipeline API, served side by side on one port: their gRPC paths
/// differ (package and method names), so the path alone says which one a call speaks.
///
/// | generation | package | trigger request |
/// | --- | --- | --- |
/// | 2024 | `vdp.pipeline.v1beta` | `TriggerNamespacePipeline…`: `namespace_id=1, pipeline_id=2, inputs=3, data=4` |
/// | 2025 (instill-sdk 0.18) | `pipeline.pipeline.v1beta` | the same messages in another package |
/// | 2026 | `pipeline.v1beta` | `TriggerPipeline…`: `name=1` (`namespaces/{ns}/pipelines/{p}[/releases/{r}]`), `inputs=2, data=3` |
///
/// Field numbers are from instill-ai/protobufs (protos/ names the commit each copy was checked at).
package enum InstillGeneration: Sendable, CaseIterable {
    case vdpPipelineV1beta
    case pipelinePipelineV1beta
    case pipelineV1beta

    /// The protobuf package.
    package var package: String {
        switch self {
        case .vdpPipelineV1beta: "vdp.pipeline.v1beta"
        case .pipelinePipelineV1beta: "pipeline.pipeline.v1beta"
        case .pipelineV1beta: "pipeline.v1beta"
        }
    }

    /// `/{package}.PipelinePublicService/`: the prefix of every gRPC path of this generation.
    package var servicePath: String { "/\(package).PipelinePublicService/" }

    /// The `google.protobuf.Any` type URL of a finished operation's response: the generation's sync trigger
    /// response, so a client of that generation can unpack it with its own message class.
    package var triggerResponseTypeURL: String {
        switch self {
        case .vdpPipelineV1beta, .pipelinePipelineV1beta:
            "type.googleapis.com/\(package).TriggerNamespacePipelineResponse"
        case .pipelineV1beta: "type.googleapis.com/pipeline.v1beta.TriggerPipelineResponse"
        }
    }
}
