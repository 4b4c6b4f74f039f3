import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("RESTResponseBody")
struct RESTResponseBodyTests {
    @Test("Sync response without traces has an empty metadata object")
    func plainResult() {
        var out = ByteBuffer()
        let result = TriggerResult(outputs: [
            ["text": .string("HI")], ["blob": .blob(Blob(contentType: "image/png", bytes: buffer("hi")))],
        ])
        RESTResponseBody.encode(result: result, into: &out)
        #expect(out.text == #"{"outputs":[{"text":"HI"},{"blob":"data:image/png;base64,aGk="}],"metadata":{}}"#)
    }

    @Test("Traces render as Instill's REST API does")
    func traces() {
        let trace = Trace(
            statuses: [.completed, .error],
            inputs: [["in": .number(1)]],
            outputs: [],
            error: ["message": .string("boom")],
            computeTimeInSeconds: 0.1
        )
        var out = ByteBuffer()
        RESTResponseBody.encode(
            result: TriggerResult(outputs: [[:]], metadata: TriggerMetadata(traces: ["z": Trace(), "comp": trace])),
            into: &out
        )
        #expect(
            out.text
                == #"{"outputs":[{}],"metadata":{"traces":{"comp":{"statuses":["COMPLETED","ERROR"],"inputs":[{"in":1}],"#
                + #""outputs":[],"error":{"message":"boom"},"computeTimeInSeconds":0.1},"#
                + #""z":{"statuses":[],"inputs":[],"outputs":[],"computeTimeInSeconds":0}}}}"#
        )
    }

    @Test("Error body carries the google.rpc code, message and details")
    func errorBody() {
        var out = ByteBuffer()
        let error = GatewayError(.notFound, "pipeline \"demo/x\" not found", details: [["reason": .string("NO_ROUTE")]])
        RESTResponseBody.encode(error: error, into: &out)
        #expect(out.text == #"{"code":5,"message":"pipeline \"demo/x\" not found","details":[{"reason":"NO_ROUTE"}]}"#)
    }
}

@Suite("BackendHTTPBody")
struct BackendHTTPBodyTests {
    static let request = TriggerRequest(
        ref: PipelineRef(namespace: "demo", pipeline: "echo", release: "v1"),
        mode: .sync,
        inputs: [
            TriggerInput(
                variables: [
                    "prompt": .string("hi"), "img": .blob(Blob(contentType: "image/png", bytes: buffer([0, 255]))),
                ],
                secrets: ["b": "2", "a": "1"]
            ),
            TriggerInput(variables: ["n": .number(3)]),
        ],
        requestID: "req-1",
        returnTraces: true
    )

    @Test("The run request has the fixed schema")
    func requestSchema() {
        var out = ByteBuffer()
        BackendHTTPBody.encode(request: Self.request, into: &out)
        #expect(
            out.text
                == #"{"namespace":"demo","pipeline":"echo","release":"v1","request_id":"req-1","return_traces":true,"#
                + #""data":[{"variable":{"prompt":"hi","img":"data:image/png;base64,AP8="},"secret":{"a":"1","b":"2"}},"#
                + #"{"variable":{"n":3},"secret":{}}]}"#
        )
    }

    @Test("The run request round-trips; release is omitted when nil")
    func requestRoundTrip() throws {
        var out = ByteBuffer()
        BackendHTTPBody.encode(request: Self.request, into: &out)
        #expect(try BackendHTTPBody.decodeRequest(out, limits: .defaults) == Self.request)

        var unpinned = Self.request
        unpinned.ref.release = nil
        unpinned.returnTraces = false
        var plain = ByteBuffer()
        BackendHTTPBody.encode(request: unpinned, into: &plain)
        #expect(!plain.text.contains("release"))
        #expect(try BackendHTTPBody.decodeRequest(plain, limits: .defaults) == unpinned)
    }

    @Test("A run request without a pipeline is rejected")
    func requestMissingPipeline() {
        let error = gatewayError {
            _ = try BackendHTTPBody.decodeRequest(buffer(#"{"namespace":"demo","data":[{}]}"#), limits: .defaults)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == #"run request: "pipeline" must be a non-empty string"#)
    }

    @Test("A result round-trips through the sync-response shape, traces included")
    func resultRoundTrip() throws {
        let result = TriggerResult(
            outputs: [
                ["x": .list([.number(1.5), .null])],
                ["b": .blob(Blob(contentType: "audio/wav", bytes: buffer("RIFF")))],
            ],
            metadata: TriggerMetadata(traces: [
                "c1": Trace(
                    statuses: [.completed],
                    inputs: [["a": .bool(true)]],
                    outputs: [["b": .string("x")]],
                    computeTimeInSeconds: 0.25
                ),
                "c2": Trace(statuses: [.skipped], error: ["message": .string("skipped")]),
            ])
        )
        var out = ByteBuffer()
        RESTResponseBody.encode(result: result, into: &out)
        #expect(try BackendHTTPBody.decodeResult(out, limits: .defaults) == result)
    }

    @Test(
        "Results that are not JSON or have the wrong shape are backend failures",
        arguments: [
            ("<html>oops", "backend answered invalid JSON: invalid JSON at byte 0: unexpected '<', expected a value"),
            ("[]", "backend answered an array, not an object"),
            (#"{"outputs":{}}"#, #"backend answered an unexpected body: "outputs" must be an array"#),
            (#"{"outputs":[1]}"#, "backend answered an unexpected body: outputs[0] must be an object"),
        ]
    )
    func badResult(text: String, message: String) {
        let error = gatewayError { _ = try BackendHTTPBody.decodeResult(buffer(text), limits: .defaults) }
        #expect(error?.code == .backendFailed)
        #expect(error?.message == message)
    }

    @Test("A JSON error body is the pipeline's error, code unchanged; anything else is no pipeline error")
    func errors() {
        var body = ByteBuffer()
        RESTResponseBody.encode(error: GatewayError(.invalidArgument, "bad prompt"), into: &body)
        let mapped = BackendHTTPBody.pipelineError(in: body)
        #expect(mapped == GatewayError(.application(3), "bad prompt"))
        body.clear()
        RESTResponseBody.encode(error: GatewayError(.application(13), "pipeline broke"), into: &body)
        let pipelineError = BackendHTTPBody.pipelineError(in: body)
        #expect(pipelineError == GatewayError(.application(13), "pipeline broke"))
        #expect(pipelineError?.code.httpStatus == 500 && pipelineError?.code.rpcCode == 13)

        #expect(BackendHTTPBody.pipelineError(in: buffer("<h1>Bad Gateway</h1>\n")) == nil)
        #expect(BackendHTTPBody.pipelineError(in: ByteBuffer()) == nil)
        #expect(BackendHTTPBody.logSnippet(buffer("\n  <h1>Bad\nGateway</h1>\n")) == "<h1>BadGateway</h1>")
        #expect(BackendHTTPBody.logSnippet(buffer(String(repeating: "x", count: 300))).count == 200)
    }
}
