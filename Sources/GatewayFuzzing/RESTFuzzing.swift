import GatewayServer
import NIOCore
import ProtoCodec
import TriggerModel
import WireCodecs

/// The REST-side decoders: JSON trigger bodies, JSON values, multipart forms, the HTTP backend hop's bodies and
/// its SSE stream, plus the protocol sniffer's preface match. Driven on the raw input (``run(_:)``); the
/// frontends reach the same decoders on request bodies through ``FuzzConnection``.
///
/// What must hold, besides never trapping:
/// - a decoded JSON value re-encodes to JSON that decodes to the same value (blobs included: the data-URI
///   round trip);
/// - a decoded trigger batch survives the backend hop's JSON and the gRPC `Struct` encoding unchanged (values
///   and keys are `bytes` and carry NUL; a NUL in a secret, a C string, is refused by the decoder): a blob means
///   the same over REST and gRPC;
/// - the multipart and SSE decoders give the same result whether the body arrives at once or in uneven
///   chunks;
/// - the sniffer decides the same whether the preface arrives at once or a byte at a time.
enum RESTFuzzing {
    /// The gateway's caps, shrunk so short inputs reach them. The depth leaves room for the three levels a
    /// trigger body wraps around its variables, so every accepted batch also fits `ProtoLimits`.
    static let limits = CodecLimits(
        maxBodyBytes: 1 << 16,
        maxBatch: 32,
        maxDepth: 16,
        maxMultipartParts: 64,
        maxMultipartPartHeaderBytes: 1024
    )

    /// Caps a short input reaches at every turn: the member, batch and depth counts of the trigger body's
    /// passthrough against the parser's.
    static let smallLimits = CodecLimits(maxBodyBytes: 1 << 16, maxBatch: 3, maxDepth: 6, maxJSONMembers: 24)

    /// Read sizes cycled through when a body is fed in pieces.
    static let chunkSizes = [1, 5, 2, 13, 3, 64, 7]

    /// The raw input as every kind of body.
    static func run(_ bytes: UnsafeRawBufferPointer) {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        sniffer(buffer)
        triggerBody(buffer)
        jsonValue(buffer)
        backendBodies(buffer)
        sse(buffer)
        let (boundary, body) = multipartFraming(buffer)
        multipart(body, boundary: boundary)
    }

    // MARK: JSON

    static func triggerBody(_ body: ByteBuffer) {
        triggerBodyPassthrough(body, limits: limits)
        triggerBodyPassthrough(body, limits: smallLimits)
        guard let inputs = try? RESTTriggerBody.decode(json: body, limits: limits) else { return }
        let ref = PipelineRef(namespace: "n", pipeline: "p")
        let request = TriggerRequest(ref: ref, inputs: inputs, requestID: "r")
        var hop = ByteBuffer()
        BackendHTTPBody.encode(request: request, into: &hop)
        do {
            let again = try BackendHTTPBody.decodeRequest(hop, limits: limits)
            precondition(again.inputs == inputs, "trigger batch changes over the backend hop's JSON")
            // `==` does not compare a number's form: the runner's side writing other text would show one lost.
            var second = ByteBuffer()
            BackendHTTPBody.encode(
                request: TriggerRequest(ref: ref, inputs: again.inputs, requestID: "r"), into: &second)
            precondition(second == hop, "trigger batch's text changes over a second backend hop")
        } catch {
            preconditionFailure("accepted trigger batch does not survive the backend hop's JSON: \(error)")
        }
        precondition(!inputs.contains(where: hasNULInSecrets), "a secret holding NUL is accepted (cut over gRPC)")
        let proto = InstillCodec.encodeTriggerRequest(ref: ref, inputs: inputs)
        do {
            let again = try InstillCodec.decodeTriggerRequest(proto, release: false, maxBatch: limits.maxBatch)
            precondition(again.inputs == inputs, "REST trigger batch changes when sent over gRPC")
        } catch {
            preconditionFailure("accepted REST trigger batch does not survive the gRPC encoding: \(error)")
        }
    }

    /// A trigger body whose batch goes to an http runner as the client's text (issue 11, `RESTRequestPassthrough`)
    /// gives the runner's body and the inputs that decoding and re-encoding give, or the same error.
    static func triggerBodyPassthrough(_ body: ByteBuffer, limits: CodecLimits) {
        let carried = Result { try RESTTriggerBody.decodeBatch(json: body, limits: limits) }
        let tree = Result { try RESTTriggerBody.decode(json: body, limits: limits, keepCanonicalBase64: true) }
        switch (carried, tree) {
        case (.success(let batch), .success(let reference)):
            var request = TriggerRequest(ref: PipelineRef(namespace: "n", pipeline: "p"), inputs: [], requestID: "r")
            var referenceRequest = request
            request.batch = batch
            referenceRequest.inputs = reference
            var runBody = ByteBuffer()
            BackendHTTPBody.encode(request: request, into: &runBody)
            var referenceBody = ByteBuffer()
            BackendHTTPBody.encode(request: referenceRequest, into: &referenceBody)
            precondition(runBody == referenceBody, "a passed-through trigger body differs from its re-encoding")
            precondition(
                BackendHTTPBody.streamed(request: request).joined() == runBody,
                "a passed-through trigger body streams other bytes")
            precondition(batch.inputs == reference, "a passed-through trigger body decodes to other inputs")
        case (.failure(let error), .failure(let reference)):
            precondition("\(error)" == "\(reference)", "the passthrough changed a trigger body's error")
        default:
            preconditionFailure("the trigger body passthrough accepts what decoding refuses, or the other way round")
        }
    }

    static func jsonValue(_ body: ByteBuffer) {
        guard let value = try? JSONValueCodec.decode(body, limits: limits) else { return }
        let encoded = JSONValueCodec.encode(value)
        do {
            let again = try JSONValueCodec.decode(encoded, limits: limits)
            precondition(again == value, "JSON value changes when re-encoded")
            // `==` does not compare a number's form (`NumberForm`): a second hop writing other text would show a
            // form lost or changed (`2.0` read back as `2`).
            precondition(JSONValueCodec.encode(again) == encoded, "JSON text changes on a second hop")
        } catch {
            preconditionFailure("accepted JSON value does not survive re-encoding: \(error)")
        }
    }

    static func backendBodies(_ body: ByteBuffer) {
        if let request = try? BackendHTTPBody.decodeRequest(body, limits: limits) {
            var encoded = ByteBuffer()
            BackendHTTPBody.encode(request: request, into: &encoded)
            do {
                let again = try BackendHTTPBody.decodeRequest(encoded, limits: limits)
                precondition(again == request, "backend run request changes when re-encoded")
            } catch {
                preconditionFailure("accepted backend run request does not survive re-encoding: \(error)")
            }
        }
        let result = Result { try BackendHTTPBody.decodeResult(body, limits: limits) }
        let tree = Result { try BackendHTTPBody.decodeTree(body, limits: limits) }
        switch (result, tree) {
        case (.success(let result), .success(let tree)):
            // The runner's text passed through (issue 11) is what the tree would have encoded to, byte for byte.
            var encoded = ByteBuffer()
            RESTResponseBody.encode(result: result, into: &encoded)
            var reference = ByteBuffer()
            RESTResponseBody.encode(result: tree, into: &reference)
            precondition(encoded == reference, "a passed-through sync response differs from its re-encoding")
            // A NaN (an http runner may write one) is not equal to itself: then the encodings above, byte for
            // byte, are the check.
            precondition(
                result == tree || holdsNaN(tree.outputs), "a passed-through sync response decodes to other outputs")
            _ = try? BackendHTTPBody.decodeResult(encoded, limits: limits)
        case (.failure(let error), .failure(let reference)):
            precondition("\(error)" == "\(reference)", "the passthrough changed a runner answer's error")
        default:
            preconditionFailure("the passthrough accepts what decoding refuses, or the other way round")
        }
        // The same body as an SSE event's data: `SSEDecoder.triggerEvent`'s passthrough against its tree.
        for event in [SSEEncoder.outputEvent, SSEEncoder.errorEvent] {
            let passed = Result { try SSEDecoder.triggerEvent(event: event, data: body, limits: limits) }
            let tree = Result { try SSEDecoder.triggerEventTree(event: event, data: body, limits: limits) }
            switch (passed, tree) {
            case (.success(let passed), .success(let tree)):
                var encoded = ByteBuffer()
                SSEEncoder.encode(passed, into: &encoded)
                var reference = ByteBuffer()
                SSEEncoder.encode(tree, into: &reference)
                precondition(encoded == reference, "a passed-through SSE event differs from its re-encoding")
                precondition(
                    passed == tree || holdsNaN(tree), "a passed-through SSE event decodes to other outputs")
            case (.failure(let error), .failure(let reference)):
                precondition("\(error)" == "\(reference)", "the passthrough changed an SSE event's error")
            default:
                preconditionFailure("the SSE passthrough accepts what decoding refuses, or the other way round")
            }
        }
        _ = BackendHTTPBody.pipelineError(in: body)
        _ = BackendHTTPBody.logSnippet(body)
    }

    /// Whether an event's outputs hold a NaN, which no `==` finds equal to itself.
    private static func holdsNaN(_ event: TriggerEvent) -> Bool {
        switch event {
        case .output(_, let result), .end(let result): holdsNaN(result.outputs)
        case .status, .error: false
        }
    }

    private static func holdsNaN(_ outputs: [ValueObject]) -> Bool {
        func holds(_ value: Value) -> Bool {
            switch value {
            case .number(let number, _): number.isNaN
            case .list(let items): items.contains(where: holds)
            case .object(let object): object.entries.contains { holds($0.value) }
            default: false
            }
        }
        return outputs.contains { $0.entries.contains { holds($0.value) } }
    }

    private static func hasNULInSecrets(_ input: TriggerInput) -> Bool {
        input.secrets.contains { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) }
    }

    // MARK: Multipart

    /// The boundary and body for the raw input: `--<boundary>` on the first line gives the boundary and the
    /// whole input is the body; a first line that is a `Content-Type` with a `boundary` gives it and the rest
    /// is the body; otherwise the boundary is the seeds' `XyZ`.
    static func multipartFraming(_ input: ByteBuffer) -> (boundary: String, body: ByteBuffer) {
        let view = input.readableBytesView
        let lineEnd = view.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) ?? view.endIndex
        let line = String(decoding: view[view.startIndex..<lineEnd], as: UTF8.self)
        if line.hasPrefix("--") { return (String(line.dropFirst(2)), input) }
        if let boundary = MediaType.parse(line).parameters["boundary"] {
            var body = input
            body.moveReaderIndex(forwardBy: min(lineEnd - view.startIndex + 1, body.readableBytes))
            return (boundary, body)
        }
        return ("XyZ", input)
    }

    private enum Outcome<T: Equatable>: Equatable {
        case value(T)
        case failed(GatewayError.Code, String)

        init(_ body: () throws -> T) {
            do {
                self = .value(try body())
            } catch let error as GatewayError {
                self = .failed(error.code, error.message)
            } catch {
                self = .failed(.internalError, "\(error)")
            }
        }
    }

    static func multipart(_ body: ByteBuffer, boundary: String) {
        let whole = Outcome<[TriggerInput]> {
            var decoder = try MultipartFormDecoder(boundary: boundary, limits: limits)
            try decoder.feed(body)
            return try decoder.finish()
        }
        let chunked = Outcome<[TriggerInput]> {
            var decoder = try MultipartFormDecoder(boundary: boundary, limits: limits)
            for chunk in chunks(of: body) { try decoder.feed(chunk) }
            return try decoder.finish()
        }
        precondition(whole == chunked, "multipart decoding differs when the body arrives in chunks")
    }

    // MARK: SSE

    private struct Event: Equatable {
        var name: String
        var data: ByteBuffer
    }

    static func sse(_ body: ByteBuffer) {
        let whole = Outcome<[Event]> {
            var decoder = SSEDecoder(maxEventBytes: 4096)
            return try decoder.feed(body).map { Event(name: $0.event, data: $0.data) }
        }
        let chunked = Outcome<[Event]> {
            var decoder = SSEDecoder(maxEventBytes: 4096)
            var events: [Event] = []
            for chunk in chunks(of: body) {
                events += try decoder.feed(chunk).map { Event(name: $0.event, data: $0.data) }
            }
            return events
        }
        precondition(whole == chunked, "SSE decoding differs when the stream arrives in chunks")
        if case .value(let events) = whole {
            for event in events {
                _ = try? SSEDecoder.triggerEvent(event: event.name, data: event.data, limits: limits)
            }
        }
    }

    // MARK: Sniffer

    /// The preface match over the input's first 24 bytes: at once, then a byte at a time, must agree.
    static func sniffer(_ input: ByteBuffer) {
        let prefix = input.getSlice(at: input.readerIndex, length: min(input.readableBytes, 24))!
        let atOnce = ProtocolSniffer.match(prefix, from: 0)
        var matched = 0
        var dripped = ProtocolSniffer.MatchResult.partial(0)
        var rest = prefix
        while let byte = rest.readSlice(length: 1) {
            dripped = ProtocolSniffer.match(byte, from: matched)
            guard case .partial(let count) = dripped else { break }
            matched = count
        }
        precondition(atOnce == dripped, "the sniffer decides differently when the preface is drip-fed")
        let isPreface = prefix.readableBytesView.elementsEqual(ProtocolSniffer.preface.prefix(prefix.readableBytes))
        precondition((atOnce != .mismatch) == isPreface, "the sniffer misjudges a preface prefix")
    }

    private static func chunks(of body: ByteBuffer) -> [ByteBuffer] {
        pieces(of: body, sizes: chunkSizes)
    }

    /// `body` cut into consecutive slices of `sizes[0]`, `sizes[1]`, … bytes, starting over at the end of `sizes`
    /// (the last slice shorter); `sizes` must be non-empty and positive. Used by every decoder check that feeds a
    /// body in uneven chunks.
    static func pieces(of body: ByteBuffer, sizes: [Int]) -> [ByteBuffer] {
        var rest = body
        var pieces: [ByteBuffer] = []
        var i = 0
        while rest.readableBytes > 0 {
            pieces.append(rest.readSlice(length: min(sizes[i % sizes.count], rest.readableBytes))!)
            i += 1
        }
        return pieces
    }
}
