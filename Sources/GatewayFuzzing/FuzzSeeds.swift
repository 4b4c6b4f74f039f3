import HTTP2Engine
import NIOCore
import NIOEmbedded
import ProtoCodec
import TriggerModel
import WireCodecs

/// Builds the seed corpus: what real clients send on a fresh connection, written by the engine's own client
/// role (the same bytes nghttp2-based clients such as `nghttp` and grpc's C core produce), plus bare messages
/// for the decoders. Seeds are deterministic so regenerating the corpus gives no diff.
enum FuzzSeeds {
    /// The `TriggerNamespacePipelineRequest` the Instill Python SDK sends for namespace `ns1`, pipeline
    /// `pipe1`, one batch item `{"prompt": "hello world"}`.
    static let sdkTriggerRequest: [UInt8] = hex(
        "0a036e733112057069706531221b0a190a170a0670726f6d7074120d1a0b68656c6c6f20776f726c64"
    )

    static let instillService = "/pipeline.pipeline.v1beta.PipelinePublicService/"

    static func all() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        let sdk = ByteBuffer(bytes: sdkTriggerRequest)
        let release = InstillCodec.encodeTriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "echo", release: "v1.0.0"),
            inputs: sampleInputs
        )
        let run = RunnerCodec.encodeRunRequest(
            TriggerRequest(ref: PipelineRef(namespace: "demo", pipeline: "upper"), inputs: sampleInputs, requestID: "r1")
        )

        seeds.append(("h2-grpc-sdk-trigger", session { c in
            c.request(grpcHeaders(instillService + "TriggerNamespacePipeline", extra: [
                ("grpc-timeout", "5S"), ("authorization", "Bearer t0ken"), ("user-agent", "grpc-python/1.71.0"),
            ]), messages: [sdk])
        }))
        seeds.append(("h2-grpc-release-trigger", session { c in
            c.request(grpcHeaders(instillService + "TriggerNamespacePipelineRelease"), messages: [release])
        }))
        seeds.append(("h2-grpc-runner-run", session { c in
            c.request(grpcHeaders("/trigger.runner.v1.Runner/RunStream", extra: [("grpc-timeout", "250m")]),
                      messages: [run])
        }))
        seeds.append(("h2-grpc-readiness-then-trigger", session { c in
            c.request(grpcHeaders("/core.mgmt.v1beta.MgmtPublicService/Readiness"), messages: [ByteBuffer()])
            c.request(grpcHeaders(instillService + "Readiness"), messages: [ByteBuffer()])
            c.request(grpcHeaders(instillService + "TriggerNamespacePipeline"), messages: [sdk, sdk])
        }))
        seeds.append(("h2-grpc-split-message-and-trailers", session { c in
            // One message cut over three DATA frames, then client trailers end the stream.
            let framed = GRPCMessageFramer.frame(sdk)
            let id = c.open(grpcHeaders(instillService + "TriggerNamespacePipelineWithStream"))
            c.session.sendData(stream: id, framed.getSlice(at: 0, length: 3)!, endStream: false)
            c.session.sendData(stream: id, framed.getSlice(at: 3, length: 10)!, endStream: false)
            c.session.sendData(stream: id, framed.getSlice(at: 13, length: framed.readableBytes - 13)!, endStream: false)
            c.session.sendTrailers(stream: id, ["grpc-status": "0"])
        }))
        seeds.append(("h2-grpc-cancelled-and-goaway", session { c in
            let id = c.open(grpcHeaders(instillService + "TriggerAsyncNamespacePipeline"))
            c.session.sendData(stream: id, GRPCMessageFramer.frame(sdk), endStream: false)
            c.session.resetStream(id, errorCode: .cancel)
            c.request(grpcHeaders(instillService + "TriggerNamespacePipeline"), messages: [sdk])
            c.session.initiateGracefulShutdown()
        }))
        seeds.append(("h2-grpc-bad-frames", session { c in
            // A compressed-flag message, an oversized declared length, a truncated message.
            c.request(grpcHeaders(instillService + "TriggerNamespacePipeline"), raw: [1, 0, 0, 0, 1, 0])
            c.request(grpcHeaders(instillService + "TriggerNamespacePipeline"), raw: [0, 0x7f, 0xff, 0xff, 0xff])
            c.request(grpcHeaders(instillService + "TriggerNamespacePipeline"), raw: [0, 0, 0, 0, 9, 0x0a])
        }))
        seeds.append(("h2-rest-json", session { c in
            c.request(restHeaders("application/json"), raw: Array(#"{"data":[{"variable":{"prompt":"hello"}}]}"#.utf8))
        }))
        seeds.append(("h2-rest-multipart", session { c in
            let body = "--XyZ\r\nContent-Disposition: form-data; name=\"variables[0].prompt\"\r\n\r\nhello\r\n"
                + "--XyZ\r\nContent-Disposition: form-data; name=\"variables[0].file\"; filename=\"a.txt\"\r\n"
                + "Content-Type: text/plain\r\n\r\nfile body\r\n--XyZ--\r\n"
            c.request(restHeaders("multipart/form-data; boundary=XyZ"), raw: Array(body.utf8))
        }))
        seeds.append(("h2-rest-get-operation", session { c in
            c.request([
                (":method", "GET"), (":scheme", "http"), (":authority", "localhost:8080"),
                (":path", "/v1beta/operations/abc?wait=1s"),
            ], raw: nil)
        }))

        // Bare inputs for the decoders.
        seeds.append(("msg-sdk-trigger", sdkTriggerRequest))
        seeds.append(("msg-release-trigger", Array(buffer: release)))
        seeds.append(("msg-run-request", Array(buffer: run)))
        seeds.append(("msg-trigger-response", Array(buffer: InstillCodec.encodeTriggerResponse(sampleResult))))
        seeds.append(("msg-run-response", Array(buffer: RunnerCodec.encodeRunResponse(sampleResult))))
        seeds.append(("msg-framed-two", Array(buffer: GRPCMessageFramer.frame(sdk)) + Array(buffer: GRPCMessageFramer.frame(run))))
        seeds.append(("text-timeout", Array("99999999H".utf8)))
        seeds.append(("text-grpc-message", Array("caf%C3%A9 %zz %".utf8)))
        seeds.append(("text-data-uri", Array("data:text/plain;filename=a%20b.txt;base64,aGVsbG8gd29ybGQ=".utf8)))
        return seeds
    }

    static var sampleInputs: [TriggerInput] {
        let blob = Blob(contentType: "image/png", fileName: "x.png", bytes: ByteBuffer(bytes: [0x89, 0x50, 0x4e, 0x47]))
        return [
            TriggerInput(
                variables: [
                    "prompt": .string("hello world"), "n": .number(3), "ok": .bool(true), "none": .null,
                    "list": .list([.number(1.5), .string("a")]), "obj": .object(["k": .string("v")]), "img": .blob(blob),
                ],
                secrets: ["api": "s3cret"]
            ),
            TriggerInput(variables: ["prompt": .string("second")]),
        ]
    }

    static var sampleResult: TriggerResult {
        TriggerResult(outputs: sampleInputs.map(\.variables))
    }

    static func grpcHeaders(_ path: String, extra: [(String, String)] = []) -> [(String, String)] {
        [
            (":method", "POST"), (":scheme", "http"), (":authority", "localhost:8080"), (":path", path),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ] + extra
    }

    static func restHeaders(_ contentType: String) -> [(String, String)] {
        [
            (":method", "POST"), (":scheme", "http"), (":authority", "localhost:8080"),
            (":path", "/v1beta/namespaces/demo/pipelines/echo/trigger"), ("content-type", contentType),
            ("accept", "application/json"), ("request-id", "seed-1"),
        ]
    }

    /// A client session on an `EmbeddedChannel`; `body` opens streams, and everything the client wrote (preface
    /// included) is the seed. No server answers, as in a connection's first flight.
    static func session(_ body: (SeedClient) throws -> Void) -> [UInt8] {
        let channel = EmbeddedChannel()
        do {
            let session = try channel.pipeline.syncOperations.configureHTTP2Session(role: .client, delegate: nil)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try body(SeedClient(session: session))
        } catch {
            preconditionFailure("seed session failed: \(error)")
        }
        var out: [UInt8] = []
        while let bytes = try? channel.readOutbound(as: ByteBuffer.self) { out += Array(buffer: bytes) }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return out
    }

    /// Helpers over the client session used by ``session(_:)``.
    struct SeedClient {
        let session: NGHTTP2Session

        func open(_ headers: [(String, String)], endStream: Bool = false) -> HTTP2StreamID {
            do {
                return try self.session.startRequest(headers: HTTP2Headers(headers), endStream: endStream)
            } catch {
                preconditionFailure("seed request failed: \(error)")
            }
        }

        /// A request with gRPC-framed `messages`, ended by the last DATA frame.
        func request(_ headers: [(String, String)], messages: [ByteBuffer]) {
            let id = open(headers)
            var body = ByteBuffer()
            for message in messages { GRPCMessageFramer.frame(message, into: &body) }
            self.session.sendData(stream: id, body, endStream: true)
        }

        /// A request with `raw` as its body (nil: headers only, ended).
        func request(_ headers: [(String, String)], raw: [UInt8]?) {
            guard let raw else {
                _ = open(headers, endStream: true)
                return
            }
            let id = open(headers)
            self.session.sendData(stream: id, ByteBuffer(bytes: raw), endStream: true)
        }
    }

    static func hex(_ s: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            bytes.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return bytes
    }
}
