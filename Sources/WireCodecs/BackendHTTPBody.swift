package import NIOCore
package import TriggerModel

/// The JSON bodies of the HTTP backend hop (API.md §5, `POST {base}/run`).
///
/// Request: `{"namespace":"demo","pipeline":"echo","release":"v1","request_id":"...","return_traces":false,
/// "data":[{"variable":{...},"secret":{...}}]}` (`release` omitted when nil; blobs as data URIs). Response: the
/// REST sync-response shape; a failure is a non-2xx status with the REST error body. Everything else a
/// `TriggerRequest` carries (deadline, trace context, principal, idempotency key) travels in HTTP headers.
package enum BackendHTTPBody {
    /// Appends the run request for `request`.
    package static func encode(request: TriggerRequest, into buffer: inout ByteBuffer) {
        var inline = InlineBlobs()
        encode(request: request, into: &buffer, blobs: &inline)
    }

    /// The run request for `request` as a body sent in pieces: large blobs are base64-encoded chunk by chunk
    /// as the connection takes them, never held encoded whole (`StreamedJSONBody`). Same bytes as
    /// `encode(request:into:)`.
    package static func streamed(request: TriggerRequest) -> StreamedJSONBody {
        StreamedJSONBody.render { buffer, builder in encode(request: request, into: &buffer, blobs: &builder) }
    }

    static func encode<Blobs: JSONBlobWriter>(
        request: TriggerRequest, into buffer: inout ByteBuffer, blobs: inout Blobs
    ) {
        // Each key with the value after it in one write (`writeString(_:after:into:)`): every `ByteBuffer` write
        // costs ~250 instructions of checks whatever its length (`PieceWriter`).
        JSONValueCodec.writeString(request.ref.namespace, after: "{\"namespace\":", into: &buffer)
        JSONValueCodec.writeString(request.ref.pipeline, after: ",\"pipeline\":", into: &buffer)
        if let release = request.ref.release {
            JSONValueCodec.writeString(release, after: ",\"release\":", into: &buffer)
        }
        JSONValueCodec.writeString(request.requestID, after: ",\"request_id\":", into: &buffer)
        buffer.writeStaticString(
            request.returnTraces ? ",\"return_traces\":true,\"data\":[" : ",\"return_traces\":false,\"data\":[")
        // A batch carried as the client's text (`RESTRequestPassthrough`) is those bytes: the loop below would
        // write the same ones from the decoded inputs.
        if let data = request.batch.httpRunData {
            buffer.writeImmutableBuffer(data)
            buffer.writeStaticString("]}")
            return
        }
        for (i, input) in request.inputs.enumerated() {
            buffer.writeStaticString(i > 0 ? ",{\"variable\":" : "{\"variable\":")
            JSONValueCodec.write(input.variables, into: &buffer, blobs: &blobs)
            if input.secrets.isEmpty {
                buffer.writeStaticString(",\"secret\":{}}")
                continue
            }
            // Sorted so the same request always renders the same bytes.
            for (j, name) in input.secrets.keys.sorted().enumerated() {
                JSONValueCodec.writeString(name, after: j > 0 ? "," : ",\"secret\":{", into: &buffer)
                JSONValueCodec.writeString(input.secrets[name]!, after: ":", into: &buffer)
            }
            buffer.writeStaticString("}}")
        }
        buffer.writeStaticString("]}")
    }

    /// The run request as a runner (the demo runner) receives it: mode `.sync`, other transport fields default.
    ///
    /// - Throws: `GatewayError(.invalidArgument)` for bad JSON, a missing `namespace`/`pipeline`, or a bad batch.
    package static func decodeRequest(_ body: ByteBuffer, limits: CodecLimits) throws -> TriggerRequest {
        let object = try JSONValueCodec.decodeObject(body, limits: limits, what: "run request")
        guard case .string(let namespace)? = object["namespace"], !namespace.isEmpty else {
            throw GatewayError(.invalidArgument, "run request: \"namespace\" must be a non-empty string")
        }
        guard case .string(let pipeline)? = object["pipeline"], !pipeline.isEmpty else {
            throw GatewayError(.invalidArgument, "run request: \"pipeline\" must be a non-empty string")
        }
        var release: String?
        switch object["release"] {
        case nil, .null?: break
        case .string(let r)?: release = r
        default: throw GatewayError(.invalidArgument, "run request: \"release\" must be a string")
        }
        var requestID = ""
        switch object["request_id"] {
        case nil, .null?: break
        case .string(let id)?: requestID = id
        default: throw GatewayError(.invalidArgument, "run request: \"request_id\" must be a string")
        }
        var returnTraces = false
        switch object["return_traces"] {
        case nil, .null?: break
        case .bool(let b)?: returnTraces = b
        default: throw GatewayError(.invalidArgument, "run request: \"return_traces\" must be a boolean")
        }
        return TriggerRequest(
            ref: PipelineRef(namespace: namespace, pipeline: pipeline, release: release),
            mode: .sync,
            inputs: try RESTTriggerBody.inputs(of: object, limits: limits),
            requestID: requestID,
            returnTraces: returnTraces
        )
    }

    /// The result in a 2xx response body.
    ///
    /// A body already in the form a REST client gets (`CanonicalSyncResponse`) is kept as that text
    /// (`TriggerResult.restJSON`) and its outputs are decoded only if a consumer reads them (issue 11); any
    /// other body is decoded now, with the same checks and errors either way.
    ///
    /// - Throws: `GatewayError(.backendFailed)` when the body is not JSON or not a sync-response object.
    package static func decodeResult(_ body: ByteBuffer, limits: CodecLimits) throws -> TriggerResult {
        if let json = CanonicalSyncResponse.passthroughBody(body, maxDepth: limits.maxDepth) {
            return TriggerResult(restJSON: json) { json in
                do {
                    return try decodeTree(json, limits: limits).outputs
                } catch {
                    // Unreachable: the scan accepts only what the parser accepts and the shape check passes.
                    assertionFailure("a canonical sync response failed to decode: \(error)")
                    return []
                }
            }
        }
        return try decodeTree(body, limits: limits)
    }

    /// `decodeResult` through a `Value` tree, never keeping the runner's text: the reference the passthrough
    /// must agree with (the fuzzers compare the two).
    package static func decodeTree(_ body: ByteBuffer, limits: CodecLimits) throws -> TriggerResult {
        let value: Value
        do {
            value = try JSONValueCodec.parse(body, limits: limits.forBackendAnswers, path: "")
        } catch {
            throw GatewayError(.backendFailed, "backend answered invalid JSON: \(error.error.message)")
        }
        guard case .object(let object) = value else {
            throw GatewayError(.backendFailed, "backend answered \(RESTTriggerBody.describe(value)), not an object")
        }
        do {
            return try RESTResponseBody.result(of: object)
        } catch {
            throw GatewayError(.backendFailed, "backend answered an unexpected body: \(error.message)")
        }
    }

    /// The pipeline's own error a non-2xx response carries: a JSON `{code, message, details}` body (API.md §5),
    /// an application error whose google.rpc code reaches the client unchanged and is never retried. `nil` for
    /// anything else (an HTML 502 from a proxy, a framework's error page, an empty 500): that is a transport
    /// failure of the endpoint, which the backend layer words and logs (its text never reaches a client:
    /// review 9, finding 5).
    package static func pipelineError(in body: ByteBuffer) -> GatewayError? {
        guard body.readableBytes > 0,
            case .object(let object)? = try? JSONValueCodec.parse(body, limits: .defaults.forBackendAnswers, path: "")
        else { return nil }
        return RESTResponseBody.error(of: object)
    }

    /// The first 200 bytes of a body that is not a JSON error, on one line, for the operator's log only (it can
    /// hold a stack trace or internal host names).
    package static func logSnippet(_ body: ByteBuffer) -> String {
        String(decoding: body.readableBytesView.prefix(200), as: UTF8.self)
            .filter { !$0.isNewline }
            .trimmingPrefixWhitespace()
    }
}

extension String {
    fileprivate func trimmingPrefixWhitespace() -> String {
        String(self.drop { $0.isWhitespace })
    }
}
