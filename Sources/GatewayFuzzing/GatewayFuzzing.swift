/// The libFuzzer entry point for one connection's worth of bytes: the input is what a client sent on a fresh
/// connection, fed to the server-side pipeline that ``FuzzPipeline/current`` installs (today the HTTP/2 engine
/// with a gRPC-decoding delegate) in a few uneven chunks, then the connection ends. The raw bytes are also
/// handed to every decoder directly (``fuzzGatewayDecoders(_:)``), so one corpus grows coverage of both.
///
/// Crashes, sanitizer reports and failed invariants (`preconditionFailure`) are the findings; everything the
/// gateway is supposed to reject must be rejected with an error, not a trap.
public func fuzzGatewayInput(_ bytes: UnsafeRawBufferPointer) {
    FuzzConnection.run(bytes, pipeline: .current)
    fuzzGatewayDecoders(bytes)
}

/// Drives only the decoders (protobuf, gRPC deframer, grpc-timeout, grpc-message, data URI, REST JSON,
/// multipart, backend bodies, SSE, the sniffer's preface match) on `bytes`,
/// checking the invariants listed in ``DecoderFuzzing``.
public func fuzzGatewayDecoders(_ bytes: UnsafeRawBufferPointer) {
    DecoderFuzzing.run(bytes)
}

/// Seed inputs for the corpus: complete client sides of HTTP/2 sessions (preface, SETTINGS, gRPC and REST
/// requests) produced by the engine's own client role, plus bare protobuf messages. `scripts/fuzz.sh seeds`
/// writes them to `scripts/fuzz/corpus/`.
public func gatewayFuzzSeeds() -> [(name: String, bytes: [UInt8])] {
    FuzzSeeds.all()
}
