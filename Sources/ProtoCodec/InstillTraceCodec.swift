import CTriggerProtos
import TriggerModel

/// `pipeline.pipeline.v1beta.TriggerMetadata` / `Trace` ↔ the model's `TriggerMetadata` / `Trace`. Traces
/// are written in component-id order so equal results encode to equal bytes.
enum InstillTraceCodec {
    typealias PBMetadata = Pipeline__Pipeline__V1beta__TriggerMetadata
    typealias PBEntry = Pipeline__Pipeline__V1beta__TriggerMetadata__TracesEntry
    typealias PBTrace = Pipeline__Pipeline__V1beta__Trace

    static func encode(_ metadata: TriggerMetadata, in arena: ProtoArena) -> UnsafeMutablePointer<PBMetadata> {
        let m: UnsafeMutablePointer<PBMetadata> = arena.message(pipeline__pipeline__v1beta__trigger_metadata__init)
        (m.pointee.n_traces, m.pointee.traces) = arena.repeated(metadata.traces.sorted { $0.key < $1.key }) {
            key, trace in
            let entry: UnsafeMutablePointer<PBEntry> = arena.message(
                pipeline__pipeline__v1beta__trigger_metadata__traces_entry__init
            )
            entry.pointee.key = arena.cString(key)
            entry.pointee.value = encode(trace, in: arena)
            return entry
        }
        return m
    }

    static func encode(_ trace: Trace, in arena: ProtoArena) -> UnsafeMutablePointer<PBTrace> {
        let m: UnsafeMutablePointer<PBTrace> = arena.message(pipeline__pipeline__v1beta__trace__init)
        (m.pointee.n_statuses, m.pointee.statuses) = arena.repeated(trace.statuses) {
            Pipeline__Pipeline__V1beta__Trace__Status(rawValue: numericCast($0.rawValue))
        }
        (m.pointee.n_inputs, m.pointee.inputs) = StructCodec.encode(trace.inputs, in: arena)
        (m.pointee.n_outputs, m.pointee.outputs) = StructCodec.encode(trace.outputs, in: arena)
        if let error = trace.error { m.pointee.error = StructCodec.encode(error, in: arena) }
        m.pointee.compute_time_in_seconds = trace.computeTimeInSeconds
        return m
    }

    static func metadata(_ m: UnsafePointer<PBMetadata>?) throws -> TriggerMetadata {
        guard let m else { return TriggerMetadata() }
        var traces: [String: Trace] = [:]
        for i in 0..<m.pointee.n_traces {
            guard let entry = m.pointee.traces[i] else { continue }
            traces[StructCodec.string(entry.pointee.key)] = try trace(entry.pointee.value)
        }
        return TriggerMetadata(traces: traces)
    }

    static func trace(_ m: UnsafePointer<PBTrace>?) throws -> Trace {
        guard let m else { return Trace() }
        var trace = Trace(computeTimeInSeconds: m.pointee.compute_time_in_seconds)
        for i in 0..<m.pointee.n_statuses {
            // An unknown enum number (a newer server) reads as unspecified rather than failing the response.
            trace.statuses.append(Trace.Status(rawValue: Int(m.pointee.statuses[i].rawValue)) ?? .unspecified)
        }
        for i in 0..<m.pointee.n_inputs { trace.inputs.append(try StructCodec.object(m.pointee.inputs[i])) }
        for i in 0..<m.pointee.n_outputs { trace.outputs.append(try StructCodec.object(m.pointee.outputs[i])) }
        if let error = m.pointee.error { trace.error = try StructCodec.object(error) }
        return trace
    }
}
