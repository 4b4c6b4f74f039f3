/// The libFuzzer entry point for one connection's worth of bytes: the input is what a client sent on a fresh
/// connection, served by the gateway's real connection pipeline (the protocol sniffer, then the HTTP/1.1
/// frontend or the HTTP/2 frontend connection, as `GatewayServer` installs them) with a dispatcher that runs
/// the demo pipelines in-process (``FuzzServices``), in a few uneven chunks; then the connection is left
/// quiet until a timeout or the drain closes it (``FuzzConnection``). The raw bytes are also handed to every
/// decoder directly (``fuzzGatewayDecoders(_:)``), so one corpus grows coverage of both.
///
/// Crashes, sanitizer reports and failed invariants (`preconditionFailure`: a request left unanswered on an
/// open connection, an answer that does not parse as HTTP/1.1 responses or HTTP/2 frames, a connection that
/// outlives every timeout) are the findings; everything the gateway is supposed to reject must be rejected
/// with an error, not a trap.
public func fuzzGatewayInput(_ bytes: UnsafeRawBufferPointer) {
    FuzzConnection.run(Array(bytes))
    fuzzGatewayDecoders(bytes)
}

/// Drives only the decoders (protobuf, gRPC deframer, grpc-timeout, grpc-message, data URI, REST JSON,
/// multipart, backend bodies, SSE, the sniffer's preface match) on `bytes`,
/// checking the invariants listed in ``DecoderFuzzing``; our HTTP/1.1 request decoder against NIO's
/// (``HTTP1DecoderFuzzing``); and our HTTP/1.1 response decoder (``HTTP1ResponseDecoderFuzzing``).
public func fuzzGatewayDecoders(_ bytes: UnsafeRawBufferPointer) {
    DecoderFuzzing.run(bytes)
    HTTP1DecoderFuzzing.run(bytes)
    HTTP1ResponseDecoderFuzzing.run(bytes)
}

/// Drives only the streaming relay's parsers (``RelayFuzzing``): `FUZZ_ONLY=relay scripts/fuzz.sh run` fuzzes
/// them at thousands of inputs a second instead of the few a second a whole connection run allows.
public func fuzzRelayParsers(_ bytes: UnsafeRawBufferPointer) {
    RelayFuzzing.run(bytes)
}

/// Seed inputs for the corpus: complete client sides of HTTP/2 sessions (preface, SETTINGS, gRPC and REST
/// requests) produced by the engine's own client role, plus bare protobuf messages. `scripts/fuzz.sh seeds`
/// writes them to `scripts/fuzz/corpus/`.
public func gatewayFuzzSeeds() -> [(name: String, bytes: [UInt8])] {
    FuzzSeeds.all()
}

/// The REST bodies' decoders (``RESTFuzzing``: JSON trigger bodies and their passthrough to http runners, JSON
/// values, multipart forms, the http runner's bodies and SSE stream): `FUZZ_ONLY=rest` fuzzes only those,
/// thousands of inputs a second; seeds corpus/rest-*.
public func fuzzRESTDecoders(_ bytes: UnsafeRawBufferPointer) {
    RESTFuzzing.run(bytes)
}

/// Our HTTP/1.1 response decoder, what the http transport reads runners' answers with
/// (``HTTP1ResponseDecoderFuzzing``): `FUZZ_ONLY=h1resp` fuzzes only that, thousands of inputs a second.
public func fuzzHTTP1ResponseDecoder(_ bytes: UnsafeRawBufferPointer) {
    HTTP1ResponseDecoderFuzzing.run(bytes)
}

/// Differential fuzzing of our HTTP/1.1 request decoder against NIO's (llhttp) (``HTTP1DecoderFuzzing``):
/// `FUZZ_ONLY=http1` fuzzes only that, thousands of inputs a second.
public func fuzzHTTP1Decoder(_ bytes: UnsafeRawBufferPointer) {
    HTTP1DecoderFuzzing.run(bytes)
}
