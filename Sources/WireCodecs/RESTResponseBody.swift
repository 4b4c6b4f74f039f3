package import NIOCore
package import TriggerModel

/// The JSON bodies a REST client gets back (API.md §2): the sync response
/// `{"outputs":[...],"metadata":{"traces":{...}}}` and the error `{"code":3,"message":"...","details":[]}`.
///
/// The same shapes travel on the HTTP backend hop (`BackendHTTPBody`) and in SSE data lines (`SSEEncoder`), so
/// their decoders live here too.
package enum RESTResponseBody {
    /// Appends the sync response for `result`; binaries come out as data URIs, `metadata` is `{}` without traces.
    /// A result that carries the runner's text in this form already (`TriggerResult.restJSON`) is written as it is.
    package static func encode(result: TriggerResult, into buffer: inout ByteBuffer) {
        if let json = result.restJSON {
            buffer.writeImmutableBuffer(json)
            return
        }
        buffer.writeStaticString("{\"outputs\":")
        writeObjects(result.outputs, into: &buffer)
        buffer.writeStaticString(",\"metadata\":")
        writeMetadata(result.metadata, into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// Appends the error body: the google.rpc code number, the message, and the details objects.
    package static func encode(error: GatewayError, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"code\":")
        JSONValueCodec.writeInteger(Int64(error.code.rpcCode), into: &buffer)
        buffer.writeStaticString(",\"message\":")
        JSONValueCodec.writeString(error.message, into: &buffer)
        buffer.writeStaticString(",\"details\":")
        writeObjects(error.details, into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// Appends `{"traces":{...}}`, or `{}` when there are none; components in name order so output is stable.
    package static func writeMetadata(_ metadata: TriggerMetadata, into buffer: inout ByteBuffer) {
        guard !metadata.traces.isEmpty else {
            buffer.writeStaticString("{}")
            return
        }
        buffer.writeStaticString("{\"traces\":{")
        for (i, name) in metadata.traces.keys.sorted().enumerated() {
            if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            JSONValueCodec.writeString(name, into: &buffer)
            buffer.writeInteger(UInt8(ascii: ":"))
            writeTrace(metadata.traces[name]!, into: &buffer)
        }
        buffer.writeStaticString("}}")
    }

    /// One trace as Instill's REST API renders `Trace`: camelCase members, statuses by name.
    static func writeTrace(_ trace: Trace, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"statuses\":[")
        for (i, status) in trace.statuses.enumerated() {
            if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            JSONValueCodec.writeString(name(of: status), into: &buffer)
        }
        buffer.writeStaticString("],\"inputs\":")
        writeObjects(trace.inputs, into: &buffer)
        buffer.writeStaticString(",\"outputs\":")
        writeObjects(trace.outputs, into: &buffer)
        if let error = trace.error {
            buffer.writeStaticString(",\"error\":")
            JSONValueCodec.write(error, into: &buffer)
        }
        buffer.writeStaticString(",\"computeTimeInSeconds\":")
        JSONValueCodec.writeFloat(trace.computeTimeInSeconds, into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    static func writeObjects(_ objects: [ValueObject], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "["))
        for (i, object) in objects.enumerated() {
            if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            JSONValueCodec.write(object, into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    /// The JSON name of a trace status. The numbers follow `Trace.Status` (= Instill's enum numbers).
    static func name(of status: Trace.Status) -> String {
        switch status {
        case .unspecified: "UNSPECIFIED"
        case .completed: "COMPLETED"
        case .skipped: "SKIPPED"
        case .error: "ERROR"
        }
    }

    /// The status a JSON name or number stands for; accepts `COMPLETED`, `STATUS_COMPLETED` and `1` alike.
    static func status(from value: Value) -> Trace.Status? {
        switch value {
        case .number(let n, _): return Int(exactly: n).flatMap(Trace.Status.init(rawValue:))
        case .string(let s):
            let name = s.hasPrefix("STATUS_") ? String(s.dropFirst(7)) : s
            return [Trace.Status.unspecified, .completed, .skipped, .error].first { self.name(of: $0) == name }
        default: return nil
        }
    }

    // MARK: Decoding (for the HTTP backend hop and SSE)

    /// A `TriggerResult` from a decoded sync-response object; `problem` errors say what is wrong with it.
    static func result(of object: ValueObject) throws(ShapeProblem) -> TriggerResult {
        guard case .list(let list)? = object["outputs"] else {
            throw ShapeProblem("\"outputs\" must be an array")
        }
        let outputs = try objects(list, path: "outputs")
        var metadata = TriggerMetadata()
        switch object["metadata"] {
        case nil, .null?: break
        case .object(let m)?:
            switch m["traces"] {
            case nil, .null?: break
            case .object(let traces)?:
                for (name, value) in traces {
                    guard case .object(let t) = value else {
                        throw ShapeProblem("metadata.traces.\(name) must be an object")
                    }
                    metadata.traces[name] = try trace(of: t, path: "metadata.traces.\(name)")
                }
            default: throw ShapeProblem("metadata.traces must be an object")
            }
        default: throw ShapeProblem("\"metadata\" must be an object")
        }
        return TriggerResult(outputs: outputs, metadata: metadata)
    }

    static func trace(of object: ValueObject, path: String) throws(ShapeProblem) -> Trace {
        var trace = Trace()
        if case .list(let statuses)? = object["statuses"] {
            for (i, s) in statuses.enumerated() {
                guard let status = status(from: s) else { throw ShapeProblem("\(path).statuses[\(i)] is not a status") }
                trace.statuses.append(status)
            }
        }
        if case .list(let inputs)? = object["inputs"] { trace.inputs = try objects(inputs, path: "\(path).inputs") }
        if case .list(let outputs)? = object["outputs"] {
            trace.outputs = try objects(outputs, path: "\(path).outputs")
        }
        if case .object(let error)? = object["error"] { trace.error = error }
        if case .number(let seconds, _)? = object["computeTimeInSeconds"] ?? object["compute_time_in_seconds"] {
            trace.computeTimeInSeconds = Float(seconds)
        }
        return trace
    }

    static func objects(_ list: [Value], path: String) throws(ShapeProblem) -> [ValueObject] {
        var objects: [ValueObject] = []
        objects.reserveCapacity(list.count)
        for (i, value) in list.enumerated() {
            guard case .object(let object) = value else { throw ShapeProblem("\(path)[\(i)] must be an object") }
            objects.append(object)
        }
        return objects
    }

    /// A runner's error-body object (a `/run` answer or an SSE error event of the http backend hop) as the
    /// pipeline's application error, or nil when it has no numeric `code`.
    static func error(of object: ValueObject) -> GatewayError? {
        guard case .number(let number, _)? = object["code"], let code = Int(exactly: number) else { return nil }
        let message = object["message"]?.stringValue ?? ""
        var details: [ValueObject] = []
        if case .list(let list)? = object["details"] {
            details = list.compactMap(\.objectValue)
        }
        return GatewayError(.application(code), message, details: details)
    }
}

/// What is wrong with a decoded body's shape; callers turn it into the `GatewayError` their side calls for.
struct ShapeProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
