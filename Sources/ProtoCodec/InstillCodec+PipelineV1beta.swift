import CTriggerProtos
package import NIOCore
package import TriggerModel

/// The 2026 generation, `pipeline.v1beta`: a trigger names its pipeline or release by resource name.
/// `TriggerPipeline{,WithStream,Async}Request` and `Trigger{,Async}PipelineReleaseRequest` all are
/// `name=1, inputs=2, data=3` (instill-ai/protobufs pipeline/v1beta/pipeline.proto), so one unpack serves them.
extension InstillCodec {
    typealias NamedRequest = Pipeline__V1beta__TriggerPipelineRequest
    typealias NamedTriggerData = Pipeline__V1beta__TriggerData

    /// Decodes a `pipeline.v1beta` trigger request. `name` must be `namespaces/{ns}/pipelines/{p}`
    /// (`release: false`) or `namespaces/{ns}/pipelines/{p}/releases/{r}` (`release: true`), each id non-empty;
    /// anything else is `.invalidArgument` naming the expected form. The batch rules are `decodeTriggerRequest`'s.
    static func decodeNamedTriggerRequest(
        _ bytes: ByteBuffer,
        release: Bool,
        maxBatch: Int
    ) throws -> (ref: PipelineRef, inputs: [TriggerInput]) {
        let what = release ? "TriggerPipelineReleaseRequest" : "TriggerPipelineRequest"
        try WireDepthGuard.check(bytes, as: .namedTriggerRequest, what: what)
        return try ProtoMessage.withUnpacked(
            bytes,
            as: what,
            unpack: pipeline__v1beta__trigger_pipeline_request__unpack,
            free: pipeline__v1beta__trigger_pipeline_request__free_unpacked
        ) { m in
            let ref = try pipelineRef(resourceName: StructCodec.string(m.pointee.name), release: release)
            let inputs = try batch(
                data: m.pointee.n_data, inputs: (m.pointee.n_inputs, m.pointee.inputs), maxBatch: maxBatch
            ) { i in try namedInput(m.pointee.data![i]) }
            return (ref, inputs)
        }
    }

    /// The ref a `pipeline.v1beta` resource name names (the google.api.http templates
    /// `namespaces/*/pipelines/*` and `namespaces/*/pipelines/*/releases/*`).
    package static func pipelineRef(resourceName name: String, release: Bool) throws -> PipelineRef {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        let expected =
            release
            ? "namespaces/{namespace}/pipelines/{pipeline}/releases/{release}"
            : "namespaces/{namespace}/pipelines/{pipeline}"
        guard parts.count == (release ? 6 : 4), parts[0] == "namespaces", parts[2] == "pipelines",
            !release || parts[4] == "releases",
            parts.enumerated().allSatisfy({ $0.offset % 2 == 0 || !$0.element.isEmpty })
        else {
            throw GatewayError(.invalidArgument, "name \"\(name)\" must be \(expected)")
        }
        return PipelineRef(
            namespace: String(parts[1]), pipeline: String(parts[3]), release: release ? String(parts[5]) : nil)
    }

    /// Encodes a `pipeline.v1beta` trigger request (`name` from `ref`, the `data` form), for test clients.
    package static func encodeNamedTriggerRequest(ref: PipelineRef, inputs: [TriggerInput]) -> ByteBuffer {
        withProtoArena { arena in
            typealias SecretEntry = Pipeline__V1beta__TriggerData__SecretEntry
            let data = arena.array(of: UnsafeMutablePointer<NamedTriggerData>?.self, count: inputs.count)
            for (i, input) in inputs.enumerated() {
                let item: UnsafeMutablePointer<NamedTriggerData> = arena.message(pipeline__v1beta__trigger_data__init)
                item.pointee.variable = StructCodec.encode(input.variables, in: arena)
                let secrets = input.secrets.sorted { $0.key < $1.key }
                let entries = arena.array(of: UnsafeMutablePointer<SecretEntry>?.self, count: secrets.count)
                for (j, (key, value)) in secrets.enumerated() {
                    let entry: UnsafeMutablePointer<SecretEntry> =
                        arena.message(pipeline__v1beta__trigger_data__secret_entry__init)
                    entry.pointee.key = arena.cString(key)
                    entry.pointee.value = arena.cString(value)
                    entries![j] = entry
                }
                item.pointee.n_secret = secrets.count
                item.pointee.secret = entries
                data![i] = item
            }
            var name = "namespaces/\(ref.namespace)/pipelines/\(ref.pipeline)"
            if let release = ref.release { name += "/releases/\(release)" }
            let m: UnsafeMutablePointer<NamedRequest> = arena.message(pipeline__v1beta__trigger_pipeline_request__init)
            m.pointee.name = arena.cString(name)
            m.pointee.n_data = inputs.count
            m.pointee.data = data
            return ProtoMessage.pack(m)
        }
    }

    /// One `pipeline.v1beta.TriggerData`: its variables and secrets.
    private static func namedInput(_ item: UnsafeMutablePointer<NamedTriggerData>?) throws -> TriggerInput {
        var secrets: [String: String] = [:]
        if let item {
            for i in 0..<item.pointee.n_secret {
                guard let entry = item.pointee.secret[i] else { continue }
                secrets[StructCodec.string(entry.pointee.key)] = StructCodec.string(entry.pointee.value)
            }
        }
        return TriggerInput(variables: try StructCodec.object(item?.pointee.variable), secrets: secrets)
    }
}
