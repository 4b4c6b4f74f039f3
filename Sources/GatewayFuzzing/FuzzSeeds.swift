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
    static let sdkTriggerRequest: [UInt8] = hex(sdkTriggerRequestHex)
    static let sdkTriggerRequestHex =
        "0a036e733112057069706531221b0a190a170a0670726f6d7074120d1a0b68656c6c6f20776f726c64"

    static let instillService = "/pipeline.pipeline.v1beta.PipelinePublicService/"

    static func all() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        func h2(_ name: String, _ body: (SeedClient) -> Void) {
            seeds.append(("h2-" + name, session(body)))
        }
        let sdk = ByteBuffer(bytes: sdkTriggerRequest)
        let releaseRef = PipelineRef(namespace: "demo", pipeline: "echo", release: "v1.0.0")
        let release = InstillCodec.encodeTriggerRequest(ref: releaseRef, inputs: sampleInputs)
        let runRequest = TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "upper"),
            inputs: sampleInputs,
            requestID: "r1"
        )
        let run = RunnerCodec.encodeRunRequest(runRequest)
        let trigger = instillService + "TriggerNamespacePipeline"

        h2("grpc-sdk-trigger") { c in
            let extra = [("grpc-timeout", "5S"), ("authorization", "Bearer t0ken"), ("user-agent", "grpc-python")]
            c.request(grpcHeaders(trigger, extra: extra), messages: [sdk])
        }
        h2("grpc-release-trigger") { c in
            c.request(grpcHeaders(instillService + "TriggerNamespacePipelineRelease"), messages: [release])
        }
        h2("grpc-runner-run") { c in
            let extra = [("grpc-timeout", "250m")]
            c.request(grpcHeaders("/trigger.runner.v1.Runner/RunStream", extra: extra), messages: [run])
        }
        h2("grpc-readiness-then-trigger") { c in
            c.request(grpcHeaders("/core.mgmt.v1beta.MgmtPublicService/Readiness"), messages: [ByteBuffer()])
            c.request(grpcHeaders(instillService + "Readiness"), messages: [ByteBuffer()])
            c.request(grpcHeaders(trigger), messages: [sdk, sdk])
        }
        h2("grpc-split-message-and-trailers") { c in
            // One message cut over three DATA frames, then client trailers end the stream.
            let framed = GRPCMessageFramer.frame(sdk)
            let id = c.open(grpcHeaders(instillService + "TriggerNamespacePipelineWithStream"))
            for (offset, length) in [(0, 3), (3, 10), (13, framed.readableBytes - 13)] {
                c.session.sendData(stream: id, framed.getSlice(at: offset, length: length)!, endStream: false)
            }
            c.session.sendTrailers(stream: id, ["grpc-status": "0"])
        }
        h2("grpc-cancelled-and-goaway") { c in
            let id = c.open(grpcHeaders(instillService + "TriggerAsyncNamespacePipeline"))
            c.session.sendData(stream: id, GRPCMessageFramer.frame(sdk), endStream: false)
            c.session.resetStream(id, errorCode: .cancel)
            c.request(grpcHeaders(trigger), messages: [sdk])
            c.session.initiateGracefulShutdown()
        }
        h2("grpc-bad-frames") { c in
            // A compressed-flag message, an oversized declared length, a truncated message.
            c.request(grpcHeaders(trigger), raw: [1, 0, 0, 0, 1, 0])
            c.request(grpcHeaders(trigger), raw: [0, 0x7f, 0xff, 0xff, 0xff])
            c.request(grpcHeaders(trigger), raw: [0, 0, 0, 0, 9, 0x0a])
        }
        h2("rest-json") { c in
            c.request(restHeaders("application/json"), raw: Array(#"{"data":[{"variable":{"prompt":"hello"}}]}"#.utf8))
        }
        h2("rest-multipart") { c in
            let body = """
                --XyZ\r
                Content-Disposition: form-data; name="variables[0].prompt"\r
                \r
                hello\r
                --XyZ\r
                Content-Disposition: form-data; name="variables[0].file"; filename="a.txt"\r
                Content-Type: text/plain\r
                \r
                file body\r
                --XyZ--\r

                """
            c.request(restHeaders("multipart/form-data; boundary=XyZ"), raw: Array(body.utf8))
        }
        h2("rest-get-operation") { c in
            let headers = [
                (":method", "GET"), (":scheme", "http"), (":authority", "localhost:8080"),
                (":path", "/v1beta/operations/abc?wait=1s"),
            ]
            c.request(headers, raw: nil)
        }

        // Bare inputs for the decoders.
        let twoFramed = Array(buffer: GRPCMessageFramer.frame(sdk)) + Array(buffer: GRPCMessageFramer.frame(run))
        seeds += [
            ("msg-sdk-trigger", sdkTriggerRequest),
            ("msg-release-trigger", Array(buffer: release)),
            // A batch that passes through to a grpc runner as it is (`InstillRequestPassthrough`).
            (
                "msg-trigger-plain",
                Array(buffer: InstillCodec.encodeTriggerRequest(ref: releaseRef, inputs: plainInputs))
            ),
            // The SDK's request with "hello world" as bytes that are not UTF-8 (0xFF for the `w`) and with a NUL
            // there: refused before unpacking (`WireDepthGuard`); the passthrough check above would see a repaired
            // or cut string as a difference from the client's bytes (review 59, L11).
            ("msg-sdk-trigger-bad-utf8", hex(sdkTriggerRequestHex.replacing("20776f726c64", with: "20ff6f726c64"))),
            ("msg-sdk-trigger-nul", hex(sdkTriggerRequestHex.replacing("20776f726c64", with: "20006f726c64"))),
            ("msg-run-request", Array(buffer: run)),
            ("msg-trigger-response", Array(buffer: InstillCodec.encodeTriggerResponse(sampleResult))),
            ("msg-run-response", Array(buffer: RunnerCodec.encodeRunResponse(sampleResult))),
            ("msg-run-response-plain", Array(buffer: RunnerCodec.encodeRunResponse(plainResult))),
            ("msg-framed-two", twoFramed),
            ("text-timeout", Array("99999999H".utf8)),
            ("text-grpc-message", Array("caf%C3%A9 %zz %".utf8)),
            ("text-data-uri", Array("data:text/plain;filename=a%20b.txt;base64,aGVsbG8gd29ybGQ=".utf8)),
            ("text-data-uri-params", Array("data:text/plain;%20charset=utf-8;filename=r%C3%A9;base64,aGk".utf8)),
        ]
        seeds += restBodies()
        return seeds
    }

    /// Bare REST bodies for ``RESTFuzzing``: JSON trigger bodies (with data URIs), a JSON value, multipart
    /// forms (boundary from the first line), the backend hop's run request and result, an SSE stream.
    static func restBodies() -> [(name: String, bytes: [UInt8])] {
        let png = "data:image/png;filename=x.png;base64,iVBORw0KGgo="
        let json = [
            (
                "json-trigger",
                #"{"data":[{"variable":{"prompt":"hello","n":3,"ok":true,"none":null},"secret":{"k":"v"}}]}"#
            ),
            (
                "json-trigger-blobs",
                #"{"data":[{"variable":{"img":"\#(png)","doc":"data:text/plain;%20charset=utf-8;base64,aGk=","#
                    + #""esc":"data:image\/png;base64,AA==","s":"data:;base64"}}]}"#
            ),
            ("json-legacy-inputs", #"{"inputs":[{"a":[1,2.5,-3e10,"x\u00e9\n"]},{"b":{"c":{"d":[]}}}]}"#),
            ("json-value", #"[{"k":"data:x/y;name=a;base64,AAECAw"},1e308,-0,"\ud83d\ude00",[[[]]],{}]"#),
            (
                "json-backend-run-request",
                #"{"namespace":"demo","pipeline":"echo","release":"v1","request_id":"r1","return_traces":true,"#
                    + #""data":[{"variable":{"img":"\#(png)"},"secret":{"a":"1"}}]}"#
            ),
            (
                "json-backend-result",
                #"{"outputs":[{"text":"HI","blob":"\#(png)"}],"metadata":{"traces":{"c":{"statuses":["#
                    + #""STATUS_COMPLETED"],"outputs":[{"x":1}],"computeTimeInSeconds":0.5}}}}"#
            ),
            // Python's `json.dumps` writes these by default; a runner's answer may hold them (CodecLimits).
            (
                "json-backend-result-nonfinite",
                #"{"outputs":[{"p":NaN,"hi":Infinity,"lo":[-Infinity,1]}],"metadata":{}}"#
            ),
        ]
        let multipart = """
            --XyZ\r
            Content-Disposition: form-data; name="variables[0].prompt"\r
            \r
            hello\r
            --XyZ\r
            Content-Disposition: form-data; name="variables[0].uri"\r
            \r
            \(png)\r
            --XyZ\r
            Content-Disposition: form-data; name="variables[1].tags[0]"\r
            Content-Type: application/json\r
            \r
            {"a":[1,2]}\r
            --XyZ\r
            Content-Disposition: form-data; name="variables[0].file"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r
            Content-Type: application/pdf; name="x"\r
            \r
            %PDF-1.4 \u{1}\u{2}\r
            --XyZ--\r

            """
        let multipartWithType = """
            multipart/form-data; boundary="b 1"
            --b 1\r
            Content-Disposition: form-data; name="inputs[0].x"; filename="a;b.txt"\r
            \r
            body\r
            --b 1--\r

            """
        let sse = """
            event: PIPELINE_STATUS_UPDATED\r
            data: {"status":"RUNNING"}\r
            \r
            : comment
            event: PIPELINE_OUTPUT_UPDATED\rdata: {"outputs":[{"blob":"\(png)"}]}\r\r\
            event: PIPELINE_OUTPUT_UPDATED
            data: {"outputs":[{"text":"done"}],
            data: "metadata":{}}

            event: PIPELINE_ERROR_UPDATED
            data: {"code":4,"message":"too slow","details":[]}


            """
        return json.map { ($0.0, Array($0.1.utf8)) } + [
            ("multipart-form", Array(multipart.utf8)),
            ("multipart-type-line", Array(multipartWithType.utf8)),
            ("sse-events", Array(sse.utf8)),
        ]
    }

    static var sampleInputs: [TriggerInput] {
        let blob = Blob(
            contentType: "image/png", fileName: "x.png", bytes: ByteBuffer(bytes: [0x89, 0x50, 0x4e, 0x47]))
        return [
            TriggerInput(
                variables: [
                    "prompt": .string("hello world"), "n": .number(3), "ok": .bool(true), "none": .null,
                    "list": .list([.number(1.5), .string("a")]), "obj": .object(["k": .string("v")]),
                    "img": .blob(blob),
                ],
                secrets: ["api": "s3cret"]
            ),
            TriggerInput(variables: ["prompt": .string("second")]),
        ]
    }

    static var sampleResult: TriggerResult {
        TriggerResult(outputs: sampleInputs.map(\.variables))
    }

    /// Inputs without blobs or secrets: an Instill trigger request whose batch passes through to a grpc runner.
    static var plainInputs: [TriggerInput] {
        plainResult.outputs.map { TriggerInput(variables: $0) }
    }

    /// A result without blobs or traces: a grpc runner's answer that passes through to Instill clients as it is.
    static var plainResult: TriggerResult {
        let nested = ValueObject([(key: "k", value: .string("v")), (key: "", value: .null)])
        let output = ValueObject([
            (key: "text", value: .string("héllo 日本")), (key: "n", value: .number(1.5)), (key: "ok", value: .bool(true)),
            (key: "nothing", value: .null), (key: "list", value: .list([.number(-0.0), .string(""), .object(nested)])),
        ])
        return TriggerResult(outputs: [output, ValueObject()])
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
