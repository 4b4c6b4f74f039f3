import NIOCore
import ProtoCodec
import TriggerModel
import WireCodecs

/// Runs every decoder on the same raw bytes and checks what must hold for any input:
///
/// - decoders never trap; they return a value or throw;
/// - an Instill trigger request or runner request that decodes re-encodes to bytes that decode again (the
///   gateway re-encodes what it accepted towards backends, so accepting something it cannot re-send is a bug);
/// - a runner's `RunResponse` passed through to an Instill client, and an Instill trigger request's batch
///   passed through to a grpc runner, give the bytes re-encoding would give;
/// - the gRPC deframer yields the same messages and the same error whether the bytes arrive at once or one at
///   a time (STYLE.md habit 14: drip-fed decoding);
/// - `grpc-message` percent-encoding round-trips any string; an accepted `grpc-timeout` re-encodes to a value
///   that parses again;
/// - a decoded data URI re-encodes to one that decodes to the same blob;
/// - strict percent-decoding agrees with lenient decoding whenever it succeeds; `Accept` weights stay in
///   0...1000; gzip/deflate decompression never passes its cap, and compression round-trips;
/// - the REST decoders' invariants (``RESTFuzzing``) and the streaming relay's (``RelayFuzzing``).
enum DecoderFuzzing {
    static let maxBatch = 32

    static func run(_ bytes: UnsafeRawBufferPointer) {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        protobuf(buffer)
        deframer(buffer)
        text(bytes)
        RESTFuzzing.run(bytes)
        RelayFuzzing.run(bytes)
    }

    // MARK: Protobuf

    static func protobuf(_ buffer: ByteBuffer) {
        for release in [false, true] {
            if let (ref, inputs) = try? InstillCodec.decodeTriggerRequest(buffer, release: release, maxBatch: maxBatch)
            {
                let again = InstillCodec.encodeTriggerRequest(ref: ref, inputs: inputs)
                do {
                    _ = try InstillCodec.decodeTriggerRequest(again, release: release, maxBatch: maxBatch)
                } catch {
                    preconditionFailure("accepted trigger request does not survive re-encoding: \(error)")
                }
            }
        }
        // The 2026 generation (pipeline.v1beta): resource names instead of ids.
        for release in [false, true] {
            if let (ref, inputs) = try? InstillCodec.decodeTriggerRequest(
                buffer, generation: .pipelineV1beta, release: release, maxBatch: maxBatch)
            {
                let again = InstillCodec.encodeNamedTriggerRequest(ref: ref, inputs: inputs)
                do {
                    _ = try InstillCodec.decodeTriggerRequest(
                        again, generation: .pipelineV1beta, release: release, maxBatch: maxBatch)
                } catch {
                    preconditionFailure(
                        "accepted pipeline.v1beta trigger request does not survive re-encoding: \(error)")
                }
            }
        }
        _ = try? MgmtCodec.decodeCheckNamespaceRequest(buffer)
        _ = try? MgmtCodec.decodeGetUserRequest(buffer)
        _ = try? MgmtCodec.decodeGetOrganizationRequest(buffer)
        _ = try? InstillCodec.decodeGetPipelineRequest(buffer, release: true)
        if let request = try? RunnerCodec.decodeRunRequest(buffer) {
            do {
                _ = try RunnerCodec.decodeRunRequest(RunnerCodec.encodeRunRequest(request))
            } catch {
                preconditionFailure("accepted RunRequest does not survive re-encoding: \(error)")
            }
        }
        if let result = try? RunnerCodec.decodeRunResponse(buffer) {
            _ = RunnerCodec.encodeRunResponse(result)
        }
        runResponsePassthrough(buffer)
        runEventPassthrough(buffer)
        triggerRequestPassthrough(buffer)
        if let event = try? RunnerCodec.decodeRunEvent(buffer) {
            _ = RunnerCodec.encodeRunEvent(event)
        }
        if let result = try? InstillCodec.decodeTriggerResponse(buffer) {
            _ = InstillCodec.encodeTriggerResponse(result)
        }
        _ = try? InstillCodec.decodeGetOperationRequest(buffer)
        if let operation = try? InstillCodec.decodeOperationResponse(buffer) {
            _ = InstillCodec.encodeOperationResponse(operation: operation)
        }
        _ = InstillCodec.decodeHealthCheckRequest(buffer)
        _ = InstillCodec.decodeGRPCHealthRequest(buffer)
    }

    /// A runner's `RunResponse` passed through to an Instill client (issue 11, `InstillResponsePassthrough`)
    /// gives the bytes and the outcome that decoding and re-encoding give, or the same error.
    static func runResponsePassthrough(_ buffer: ByteBuffer) {
        let outcome = Result { try RunnerCodec.decodeRunOutcome(buffer) }
        let tree = Result { try RunnerCodec.decodeRunOutcomeTree(buffer) }
        switch (outcome, tree) {
        case (.success(.success(let result)), .success(.success(let reference))):
            precondition(
                InstillCodec.encodeTriggerResponse(result) == InstillCodec.encodeTriggerResponseTree(reference),
                "a passed-through RunResponse differs from its re-encoding")
            // Compared through the runner's encoding, so that a NaN equals itself.
            precondition(
                RunnerCodec.encodeRunResponse(result) == RunnerCodec.encodeRunResponse(reference),
                "a passed-through RunResponse decodes to other outputs")
        case (.success(.failure(let error)), .success(.failure(let reference))):
            precondition(error == reference, "the passthrough changed a runner's application error")
        case (.failure(let error), .failure(let reference)):
            precondition("\(error)" == "\(reference)", "the passthrough changed a RunResponse's decoding error")
        default:
            preconditionFailure("the RunResponse passthrough accepts what decoding refuses, or the other way round")
        }
    }

    /// A runner's `RunEvent` passed through to an Instill stream client (issue 11,
    /// `InstillResponsePassthrough.instillStreamOutput`/`endEventResult`) gives the event, the bytes and the
    /// error that decoding and re-encoding give.
    static func runEventPassthrough(_ buffer: ByteBuffer) {
        let event = Result { try RunnerCodec.decodeRunEvent(buffer) }
        let tree = Result { try RunnerCodec.decodeRunEventTree(buffer) }
        switch (event, tree) {
        case (.success(let event), .success(let reference)):
            // Compared through the runner's encoding, so that a NaN equals itself.
            precondition(
                RunnerCodec.encodeRunEvent(event) == RunnerCodec.encodeRunEvent(reference),
                "a passed-through RunEvent decodes to another event")
            let results: (TriggerResult, TriggerResult)?
            switch (event, reference) {
            case (.output(_, let result), .output(_, let referenceResult)): results = (result, referenceResult)
            case (.end(let result), .end(let referenceResult)): results = (result, referenceResult)
            default: results = nil
            }
            if let (result, referenceResult) = results {
                precondition(
                    InstillCodec.encodeTriggerResponse(result)
                        == InstillCodec.encodeTriggerResponseTree(referenceResult),
                    "a passed-through RunEvent differs from its re-encoding")
            }
        case (.failure(let error), .failure(let reference)):
            precondition("\(error)" == "\(reference)", "the passthrough changed a RunEvent's decoding error")
        default:
            preconditionFailure("the RunEvent passthrough accepts what decoding refuses, or the other way round")
        }
    }

    /// An Instill trigger request whose batch goes to a grpc runner as its own bytes renumbered (issue 11,
    /// `InstillRequestPassthrough`) gives the `RunRequest` and the model that decoding and re-encoding give, or
    /// the same error.
    static func triggerRequestPassthrough(_ buffer: ByteBuffer) {
        for release in [false, true] {
            let carried = Result {
                try InstillCodec.decodeTriggerBatch(
                    buffer, generation: .pipelinePipelineV1beta, release: release, maxBatch: maxBatch)
            }
            let tree = Result { try InstillCodec.decodeTriggerRequest(buffer, release: release, maxBatch: maxBatch) }
            switch (carried, tree) {
            case (.success(let carried), .success(let reference)):
                precondition(carried.ref == reference.ref, "the request passthrough changed the pipeline")
                // The fields around the batch vary too: a request id cut at a NUL as protobuf-c cuts it, traces.
                var request = TriggerRequest(
                    ref: carried.ref, inputs: [], requestID: release ? "r\u{0}x" : "", returnTraces: release)
                var referenceRequest = request
                request.batch = carried.batch
                referenceRequest.inputs = reference.inputs
                let runRequest = RunnerCodec.encodeRunRequestTree(referenceRequest)
                precondition(
                    RunnerCodec.encodeRunRequest(request) == runRequest
                        && RunnerCodec.encodeRunRequestPieces(request, headroom: 5).reduce(into: ByteBuffer()) {
                            $0.writeImmutableBuffer($1)
                        } == runRequest,
                    "a passed-through trigger request differs from its re-encoding")
                // Compared through the runner's encoding, so that a NaN equals itself.
                referenceRequest.inputs = carried.batch.inputs
                precondition(
                    RunnerCodec.encodeRunRequestTree(referenceRequest) == runRequest,
                    "a passed-through trigger request decodes to other inputs")
            case (.failure(let error), .failure(let reference)):
                precondition("\(error)" == "\(reference)", "the passthrough changed a trigger request's error")
            default:
                preconditionFailure("the trigger request passthrough accepts what decoding refuses, or the other way")
            }
        }
    }

    // MARK: gRPC deframer

    private enum Outcome: Equatable {
        case message(ByteBuffer)
        case failed(GatewayError.Code)

        var isFailure: Bool {
            if case .failed = self { true } else { false }
        }
    }

    static func deframer(_ buffer: ByteBuffer) {
        let cap = 1 << 12
        var whole = GRPCMessageDeframer(maxMessageBytes: cap)
        whole.append(buffer)
        let atOnce = drain(&whole)

        var drip = GRPCMessageDeframer(maxMessageBytes: cap)
        var dripped: [Outcome] = []
        var rest = buffer
        while let byte = rest.readSlice(length: 1) {
            drip.append(byte)
            dripped += drain(&drip)
            if dripped.last?.isFailure == true { break }  // errors are sticky; the rest is never looked at
        }
        precondition(
            atOnce == dripped,
            "deframer differs when drip-fed: \(atOnce.count) outcomes at once, \(dripped.count) drip-fed"
        )
        if atOnce.last?.isFailure != true {
            precondition(whole.hasPartialMessage == drip.hasPartialMessage, "deframer partial-message state differs")
        }
    }

    private static func drain(_ deframer: inout GRPCMessageDeframer) -> [Outcome] {
        var outcomes: [Outcome] = []
        do {
            while let message = try deframer.next() { outcomes.append(.message(message)) }
        } catch {
            outcomes.append(.failed((error as? GatewayError)?.code ?? .internalError))
        }
        return outcomes
    }

    // MARK: Header values and strings

    static func text(_ bytes: UnsafeRawBufferPointer) {
        // Headers reach the codecs as Strings; nghttp2 hands over arbitrary bytes, repaired to valid UTF-8.
        let string = String(decoding: bytes, as: UTF8.self)
        if let timeout = GRPCTimeout.parse(string) {
            precondition(GRPCTimeout.parse(GRPCTimeout.encode(timeout)) != nil, "grpc-timeout re-encoding")
            // The backend's form: parses, and never says less time than there is.
            let indexable = GRPCTimeout.parse(GRPCTimeout.encodeIndexable(timeout))
            precondition(indexable.map { $0 >= timeout } == true, "grpc-timeout indexable re-encoding")
        }
        _ = GRPCStatusMessage.percentDecode(string)
        let encoded = GRPCStatusMessage.percentEncode(string)
        precondition(GRPCStatusMessage.percentDecode(encoded) == string, "grpc-message does not round-trip")
        dataURI(bytes)
        if let strict = PercentDecoding.decodeStrictly(bytes) {
            precondition(strict == PercentDecoding.decode(bytes), "strict and lenient percent-decoding disagree")
        }
        let accept = AcceptHeader(lines: [string])
        if let bare = AcceptHeader.parseBareMediaType(string) {
            precondition(bare == AcceptHeader.parseMember(Substring(string)), "Accept fast path disagrees")
        }
        for type in ["application/json", "text/event-stream"] {
            precondition((0...1000).contains(accept.quality(of: type)), "Accept weight out of range")
        }
        _ = GRPCContentType(header: string)
        compression(bytes)
    }

    /// Decompression of arbitrary bytes stays under its cap; what is compressed decompresses to itself.
    static func compression(_ bytes: UnsafeRawBufferPointer) {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        for encoding in [GRPCCompression.gzip, .deflate] {
            if let plain = try? encoding.decompress(buffer, maxBytes: 4096) {
                precondition(plain.readableBytes <= 4096, "decompressed past the cap")
            }
            precondition(
                (try? encoding.decompress(encoding.compress(buffer), maxBytes: buffer.readableBytes)) == buffer,
                "\(encoding) does not round-trip"
            )
        }
    }

    /// Whatever decodes as a data URI re-encodes, within the header cap, to a URI that decodes to the same blob
    /// (the rule REST and gRPC share, so this is also what keeps a blob intact across frontends).
    static func dataURI(_ bytes: UnsafeRawBufferPointer) {
        guard let blob = try? DataURI.decode(bytes) else { return }
        let header = DataURI.header(for: blob)
        precondition(header.count <= DataURI.maxHeaderBytes, "data URI header over the cap")
        do {
            let again = try DataURI.decode(DataURI.encode(blob))
            precondition(again == blob, "data URI does not round-trip: \(String(describing: again)) != \(blob)")
        } catch {
            preconditionFailure("re-encoded data URI does not decode: \(error)")
        }
    }
}
