import SeededRandom
import NIOCore
import Synchronization
import Testing
import TriggerModel

@testable import WireCodecs

/// A runner's sync response carried through to the REST client as its own bytes (issue 11): only when those
/// bytes are what decoding and re-encoding would produce, with the same errors for everything else.
@Suite("Sync response passthrough")
struct CanonicalSyncResponseTests {
    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    static func body(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    /// The client's bytes for `body`: through `decodeResult` (which may pass the text through) and through the
    /// tree, which is how every body was handled before.
    static func encodings(_ body: ByteBuffer, limits: CodecLimits = .defaults) throws -> (
        passthrough: ByteBuffer, tree: ByteBuffer, result: TriggerResult, reference: TriggerResult
    ) {
        let result = try BackendHTTPBody.decodeResult(body, limits: limits)
        let reference = try BackendHTTPBody.decodeTree(body, limits: limits)
        var passthrough = ByteBuffer()
        RESTResponseBody.encode(result: result, into: &passthrough)
        var tree = ByteBuffer()
        RESTResponseBody.encode(result: reference, into: &tree)
        return (passthrough, tree, result, reference)
    }

    @Test(
        "Bodies already in the client's form are passed through as they are",
        arguments: [
            #"{"outputs":[],"metadata":{}}"#,
            #"{"outputs":[{}],"metadata":{}}"#,
            #"{"outputs":[{"prompt":"hello world","n":42}],"metadata":{}}"#,
            #"{"outputs":[{"a":1},{"b":[true,false,null,[],{}]}],"metadata":{}}"#,
            #"{"outputs":[{"s":"quote \" backslash \\ nl \n cr \r tab \t bs \b ff \f ctl \u0001\u001f"}],"metadata":{}}"#,
            "{\"outputs\":[{\"é\":\"café 日本 😀 \u{7f}\"}],\"metadata\":{}}",
            "{\"outputs\":[{\"é\":1,\"e\":2,\"\\n\u{301}\":3,\"\\u0001é\":4}],\"metadata\":{}}",  // distinct keys
            #"{"outputs":[{"n":[0,-1,123456789012345,-123456789012345,0.5,-0.25,1e-05,1.5e+300,3.14159]}],"metadata":{}}"#,
            // Integers of any length keep their digits on both paths (2^53, 2^53 + 1, Int64.min, UInt64.max, 2^64).
            #"{"outputs":[{"n":[1234567890123456,9007199254740992,9007199254740993,-9223372036854775808]}],"metadata":{}}"#,
            #"{"outputs":[{"n":[18446744073709551615,18446744073709551616,123456789012345678901234567890]}],"metadata":{}}"#,
            #"{"outputs":[{"n":[1e+16,2e+16,-1.2e+17]}],"metadata":{}}"#,
            // Integral values written as floats are written back so (`NumberForm.float`).
            #"{"outputs":[{"n":[1.0,-2.0,-0.0,0.0,9007199254740992.0,9999999999999998.0]}],"metadata":{}}"#,
            #"{"outputs":[{"d":"dat","e":"data","f":"date: today","g":"xdata:;base64,aGk="}],"metadata":{}}"#,
            #"{"outputs":[{"data:":"keys are never blobs"}],"metadata":{}}"#,
        ]
    )
    func passedThrough(text: String) throws {
        let (passthrough, tree, result, reference) = try Self.encodings(Self.body(text))
        #expect(result.restJSON == Self.body(text))
        #expect(passthrough == Self.body(text))
        #expect(passthrough == tree)
        #expect(result.outputs == reference.outputs)
        #expect(result == reference)
    }

    @Test("Insignificant whitespace is dropped, as re-encoding drops it; whitespace in strings stays")
    func whitespace() throws {
        let text = " {\r\n \"outputs\" : [ { \"a b\" : [ 1 , \" x \\\" y \" ] } , {} ] ,\n\t\"metadata\" : { } }\n"
        let (passthrough, tree, result, _) = try Self.encodings(Self.body(text))
        #expect(result.restJSON != nil)
        #expect(passthrough == tree)
        #expect(String(buffer: passthrough) == #"{"outputs":[{"a b":[1," x \" y "]},{}],"metadata":{}}"#)
    }

    @Test(
        "Bodies that re-encoding would change are decoded and re-encoded as before",
        arguments: [
            #"{"outputs":[{"s":"a\/b"}],"metadata":{}}"#,  // escaped slash
            #"{"outputs":[{"s":"caf\u00e9"}],"metadata":{}}"#,  // escaped non-control character
            #"{"outputs":[{"s":"\u000a"}],"metadata":{}}"#,  // written as \n
            #"{"outputs":[{"s":"\u001F"}],"metadata":{}}"#,  // upper-case hex
            #"{"outputs":[{"s":"\u0022"}],"metadata":{}}"#,  // written as \"
            #"{"outputs":[{"s":"\u007f"}],"metadata":{}}"#,  // DEL is written as it is
            #"{"outputs":[{"n":1.00}],"metadata":{}}"#,  // written 1.0
            #"{"outputs":[{"n":1e2}],"metadata":{}}"#,  // written 100.0
            #"{"outputs":[{"n":-0}],"metadata":{}}"#,
            #"{"outputs":[{"n":1E-05}],"metadata":{}}"#,
            #"{"outputs":[{"n":0.10}],"metadata":{}}"#,
            #"{"outputs":[{"n":9.007199254740992e15}],"metadata":{}}"#,  // written 9007199254740992.0
            #"{"outputs":[{"n":9.007199254740994e+15}],"metadata":{}}"#,  // Swift's form, written as digits
            #"{"outputs":[{"a":1,"a":2}],"metadata":{}}"#,  // merged by the parser
            "{\"outputs\":[{\"é\":1,\"e\u{301}\":2}],\"metadata\":{}}",  // canonically equivalent keys, merged
            "{\"outputs\":[{\"K\":1,\"\u{212A}\":2}],\"metadata\":{}}",  // K and the Kelvin sign, merged
            #"{"outputs":[{"x":{"a":1,"b":2,"a":3}}],"metadata":{}}"#,
            #"{"outputs":[{"img":"data:text/plain;base64,aGk="}],"metadata":{}}"#,  // a blob
            #"{"outputs":[{"img":"DATA:text/plain;base64,aGk="}],"metadata":{}}"#,
            #"{"outputs":[{"img":"data:x"}],"metadata":{}}"#,  // not a data URI, but left to the parser
            #"{"outputs":[{"a":1}]}"#,  // metadata added
            #"{"outputs":[{"a":1}],"metadata":null}"#,
            #"{"metadata":{},"outputs":[{"a":1}]}"#,  // member order
            #"{"outputs":[{"a":1}],"metadata":{},"extra":1}"#,  // extra member dropped
            #"{"outputs":[{"a":1}],"metadata":{"traces":{}}}"#,
            #"{"outputs":[],"metadata":{"traces":{"c":{"statuses":["STATUS_COMPLETED"],"computeTimeInSeconds":1}}}}"#,
        ]
    )
    func reEncoded(text: String) throws {
        let (passthrough, tree, result, reference) = try Self.encodings(Self.body(text))
        #expect(result.restJSON == nil)
        #expect(passthrough == tree)
        #expect(result == reference)
    }

    @Test("Objects up to the checked key count pass through; larger ones are left to the parser")
    func keyCount() throws {
        func text(keys: Int) -> String {
            let members = (0..<keys).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
            return #"{"outputs":[{\#(members)}],"metadata":{}}"#
        }
        let atLimit = try Self.encodings(Self.body(text(keys: CanonicalSyncResponse.maxCheckedKeys)))
        #expect(atLimit.result.restJSON != nil)
        #expect(atLimit.passthrough == atLimit.tree)
        let past = try Self.encodings(Self.body(text(keys: CanonicalSyncResponse.maxCheckedKeys + 1)))
        #expect(past.result.restJSON == nil)
        #expect(past.passthrough == past.tree)
    }

    /// `{"outputs":[{"a":{"a":...1}}],"metadata":{}}` whose deepest value sits at nesting `depth`, counted as the
    /// parser counts it (the body object is 1, `outputs` 2, each output object 3).
    static func nested(depth: Int) -> String {
        let inner = depth - 3
        return #"{"outputs":[{"# + String(repeating: #""a":{"#, count: inner) + #""a":1"#
            + String(repeating: "}", count: inner) + #"}],"metadata":{}}"#
    }

    @Test("Nesting at the depth limit passes through; one level more is refused as today", arguments: [3, 5, 64])
    func depthLimit(maxDepth: Int) throws {
        let limits = CodecLimits(maxDepth: maxDepth)
        let atLimit = try Self.encodings(Self.body(Self.nested(depth: maxDepth)), limits: limits)
        #expect(atLimit.result.restJSON != nil)
        #expect(atLimit.passthrough == atLimit.tree)
        #expect(atLimit.result.outputs == atLimit.reference.outputs)

        let past = Self.body(Self.nested(depth: maxDepth + 1))
        let error = Self.refusal { _ = try BackendHTTPBody.decodeResult(past, limits: limits) }
        let reference = Self.refusal { _ = try BackendHTTPBody.decodeTree(past, limits: limits) }
        #expect(error?.code == .backendFailed)
        #expect(error?.message.contains("nesting deeper than the limit of \(maxDepth) levels") == true)
        #expect(error == reference)
    }

    @Test("A limit below the response's own nesting refuses even an empty answer, as today", arguments: [1, 2])
    func depthBelowShape(maxDepth: Int) {
        let body = Self.body(#"{"outputs":[{}],"metadata":{}}"#)
        let limits = CodecLimits(maxDepth: maxDepth)
        let error = Self.refusal { _ = try BackendHTTPBody.decodeResult(body, limits: limits) }
        #expect(error?.code == .backendFailed)
        #expect(error == Self.refusal { _ = try BackendHTTPBody.decodeTree(body, limits: limits) })
    }

    /// Bodies the parser refuses (a typed list: inline in `@Test`, the literal is too slow to type-check).
    static let malformedBodies: [[UInt8]] = [
        Array(#"{"outputs":[{"s":"\#u{01}"}],"metadata":{}}"#.utf8),  // raw control character
        Array(#"{"outputs":[{"s":"a\x"}],"metadata":{}}"#.utf8),  // unknown escape
        Array(#"{"outputs":[{"s":"\u00"}],"metadata":{}}"#.utf8),  // short \u
        Array(#"{"outputs":[{"n":01}],"metadata":{}}"#.utf8),
        Array(#"{"outputs":[{"n":1.}],"metadata":{}}"#.utf8),
        Array(#"{"outputs":[{"n":1e999}],"metadata":{}}"#.utf8),
        Array(#"{"outputs":[{"a":1}],"metadata":{}} x"#.utf8),
        Array(#"{"outputs":[{"a":1}],"metadata":{}"#.utf8),
        Array(#"{"outputs":[{"a":1},],"metadata":{}}"#.utf8),
        Array(#"{"outputs":[{"a":tru}],"metadata":{}}"#.utf8),
        Array(#"{"outputs":[1],"metadata":{}}"#.utf8),
        Array(#"{"outputs":{},"metadata":{}}"#.utf8),
        Array(#"{"outputs":[],"metadata":[]}"#.utf8),
        Array(#"{"outputs":[{"img":"data:text/plain;base64,!!!"}],"metadata":{}}"#.utf8),
        Self.withString([0xC0, 0x80]),  // overlong
        Self.withString([0xE0, 0x80, 0x80]),  // overlong
        Self.withString([0xED, 0xA0, 0x80]),  // surrogate
        Self.withString([0xF4, 0x90, 0x80, 0x80]),  // past U+10FFFF
        Self.withString([0xF5, 0x80, 0x80, 0x80]),
        Self.withString([0xE2, 0x82]),  // truncated
        Self.withString([0x80]),  // continuation byte alone
        Array("".utf8),
    ]

    @Test(
        "Malformed answers are refused with today's errors",
        arguments: Self.malformedBodies
    )
    func malformed(bytes: [UInt8]) {
        let body = Self.body(bytes)
        let error = Self.refusal { _ = try BackendHTTPBody.decodeResult(body, limits: .defaults) }
        #expect(error?.code == .backendFailed)
        #expect(error == Self.refusal { _ = try BackendHTTPBody.decodeTree(body, limits: .defaults) })
    }

    @Test("A runner's NaN and infinities (Python's json.dumps) are read, not passed through, and written as null")
    func nonFiniteNumbers() throws {
        let text = #"{"outputs":[{"score":NaN,"hi":Infinity,"lo":-Infinity,"n":1}],"metadata":{}}"#
        let (passthrough, tree, result, _) = try Self.encodings(Self.body(text))
        #expect(result.restJSON == nil)
        #expect(result.outputs.first?["score"]?.numberValue?.isNaN == true)
        #expect(result.outputs.first?["lo"] == .number(-.infinity))
        let written = #"{"outputs":[{"score":null,"hi":null,"lo":null,"n":1}],"metadata":{}}"#
        #expect(passthrough == Self.body(written))
        #expect(tree == passthrough)
        // A pipeline's error answer may hold one in its details too.
        let error = BackendHTTPBody.pipelineError(
            in: Self.body(#"{"code":3,"message":"bad score","details":[{"score":NaN}]}"#))
        #expect(error?.code == .application(3))
        #expect(error?.message == "bad score")
    }

    /// A sync response whose only output value is a string holding `bytes`.
    static func withString(_ bytes: [UInt8]) -> [UInt8] {
        Array(#"{"outputs":[{"s":"x"#.utf8) + bytes + Array(#"y"}],"metadata":{}}"#.utf8)
    }

    static func refusal(_ body: () throws -> Void) -> GatewayError? {
        do {
            try body()
            return nil
        } catch {
            return error as? GatewayError
        }
    }

    @Test("Whatever the encoder writes (no blobs, no traces) passes through unchanged: 500 seeded random results")
    func encoderOutputPassesThrough() throws {
        var random = SplitMix64(seed: 11)
        for _ in 0..<500 {
            let outputs = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                Self.randomObject(depth: 0, using: &random)
            }
            var text = ByteBuffer()
            RESTResponseBody.encode(result: TriggerResult(outputs: outputs), into: &text)
            let result = try BackendHTTPBody.decodeResult(text, limits: .defaults)
            #expect(result.restJSON == text, "\(String(buffer: text))")
            #expect(result.outputs == outputs)
        }
    }

    static func randomObject(depth: Int, using random: inout SplitMix64) -> ValueObject {
        var object = ValueObject()
        for i in 0..<Int.random(in: 0...4, using: &random) {
            object["\(randomString(using: &random))\(i)"] = randomValue(depth: depth + 1, using: &random)
        }
        return object
    }

    static func randomValue(depth: Int, using random: inout SplitMix64) -> Value {
        switch Int.random(in: 0..<(depth < 4 ? 8 : 6), using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2:
            // Small integers, integers a Double holds (up to 2^53), past it (the exact case) and past 64 bits.
            switch Int.random(in: 0..<4, using: &random) {
            case 0: return .number(Double(Int.random(in: -1_000_000...1_000_000, using: &random)))
            case 1: return .number(Double(Int64.random(in: -(1 << 53)...(1 << 53), using: &random)))
            case 2: return .integer(Int64.random(in: Int64.min...Int64.max, using: &random))
            default:
                let digits = (0..<Int.random(in: 20...40, using: &random)).map { _ in
                    String(Int.random(in: 0...9, using: &random))
                }
                return .largeInteger(LargeInteger("9" + digits.joined())!)
            }
        case 3:
            let sign: FloatingPointSign = Bool.random(using: &random) ? .plus : .minus
            let exponent = Int.random(in: -1000...1000, using: &random)
            let significand = Double.random(in: 1..<2, using: &random)
            return .number(Double(sign: sign, exponent: exponent, significand: significand))
        case 4, 5:
            // A value string starting "data:" is left to the parser (it may be a blob): `reEncoded` covers it.
            let string = randomString(using: &random)
            return .string(string.lowercased().hasPrefix("data:") ? "x" + string : string)
        case 6:
            return .list(
                (0..<Int.random(in: 0...3, using: &random)).map { _ in randomValue(depth: depth + 1, using: &random) })
        default: return .object(randomObject(depth: depth, using: &random))
        }
    }

    static func randomString(using random: inout SplitMix64) -> String {
        let pieces = ["a", "Z", " ", "\"", "\\", "\n", "\t", "\u{01}", "\u{1f}", "é", "日", "😀", "/", "data", ":"]
        return (0..<Int.random(in: 0...6, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
    }
}

@Suite("TriggerResult with the runner's text")
struct LazyTriggerResultTests {
    static let text = ByteBuffer(string: #"{"outputs":[{"a":1}],"metadata":{}}"#)

    @Test("Outputs are decoded once, on first read, and shared by copies")
    func decodedOnce() {
        let decodes = Mutex(0)
        let result = TriggerResult(restJSON: Self.text) { _ in
            decodes.withLock { $0 += 1 }
            return [["a": .number(1)]]
        }
        #expect(decodes.withLock { $0 } == 0)
        let copy = result
        #expect(result.outputs == [["a": .number(1)]])
        #expect(copy.outputs == [["a": .number(1)]])
        #expect(decodes.withLock { $0 } == 1)
        #expect(result == TriggerResult(outputs: [["a": .number(1)]]))
    }

    @Test("Changing outputs or metadata drops the runner's text")
    func mutationDropsText() {
        let lazy = TriggerResult(restJSON: Self.text) { _ in [["a": .number(1)]] }
        #expect(lazy.restJSON == Self.text)
        var changedOutputs = lazy
        changedOutputs.outputs.append(["b": .null])
        #expect(changedOutputs.restJSON == nil)
        #expect(changedOutputs.outputs == [["a": .number(1)], ["b": .null]])
        var changedMetadata = lazy
        changedMetadata.metadata.traces["c"] = Trace(statuses: [.completed])
        #expect(changedMetadata.restJSON == nil)
        #expect(changedMetadata.outputs == [["a": .number(1)]])
        var out = ByteBuffer()
        RESTResponseBody.encode(result: changedMetadata, into: &out)
        #expect(String(buffer: out).contains(#""traces":{"c":"#))
        #expect(lazy.restJSON == Self.text)
    }
}

/// SSE event data carried through to the REST client's stream as the runner's bytes (issue 11,
/// `SSEDecoder.triggerEvent`): only when those bytes are what decoding and re-encoding would produce.
@Suite("SSE event data passthrough")
struct SSEPassthroughTests {

    /// The client's SSE block for `data` under `event`: through `triggerEvent` (which may pass the text through)
    /// and through the tree; the error each gives instead.
    static func sseEncodings(_ data: ByteBuffer, event: String) -> (
        passthrough: Result<(TriggerEvent, ByteBuffer), GatewayError>,
        tree: Result<(TriggerEvent, ByteBuffer), GatewayError>
    ) {
        func run(_ decode: () throws -> TriggerEvent) -> Result<(TriggerEvent, ByteBuffer), GatewayError> {
            do {
                let decoded = try decode()
                var block = ByteBuffer()
                SSEEncoder.encode(decoded, into: &block)
                return .success((decoded, block))
            } catch {
                return .failure(error as? GatewayError ?? GatewayError(.internalError, "\(error)"))
            }
        }
        return (
            run { try SSEDecoder.triggerEvent(event: event, data: data, limits: .defaults) },
            run { try SSEDecoder.triggerEventTree(event: event, data: data, limits: .defaults) }
        )
    }

    @Test(
        "SSE output data in the encoder's form is relayed as its own bytes, partial and final events alike",
        arguments: [
            (#"{"outputs":[]}"#, false), (#"{"outputs":[{"chunk":"xxxx"}]}"#, false),
            (#"{"outputs":[{"a":1},{"b":[true,null,{}]}]}"#, false),
            (#"{"outputs":[{"s":"nl \n quote \" é 😀"}]}"#, false),
            (#"{"outputs":[],"metadata":{}}"#, true), (#"{"outputs":[{"text":"done"}],"metadata":{}}"#, true),
        ])
    func ssePassedThrough(text: String, final: Bool) throws {
        let (passthrough, tree) = Self.sseEncodings(
            CanonicalSyncResponseTests.body(text), event: "PIPELINE_OUTPUT_UPDATED")
        let (decoded, block) = try passthrough.get()
        let (reference, referenceBlock) = try tree.get()
        #expect(decoded == reference)
        #expect(block == referenceBlock)
        #expect(String(buffer: block) == "event: PIPELINE_OUTPUT_UPDATED\ndata: \(text)\n\n")
        switch decoded {
        case .output(_, let result) where !final:
            #expect(result.restOutputsJSON == CanonicalSyncResponseTests.body(text))
        case .end(let result) where final: #expect(result.restJSON == CanonicalSyncResponseTests.body(text))
        default: Issue.record("\(decoded)")
        }
    }

    @Test(
        "SSE data not in the encoder's form, and error events, give the tree's event or error",
        arguments: [
            (#" { "outputs" : [ {"a" : 1} ] } "#, "PIPELINE_OUTPUT_UPDATED"),  // compacted, then passed through
            (#"{"metadata":{},"outputs":[]}"#, "PIPELINE_OUTPUT_UPDATED"),
            (#"{"outputs":[{"a":1}],"metadata":{"traces":{}}}"#, "PIPELINE_OUTPUT_UPDATED"),
            (#"{"outputs":[{"a":1,"a":2}]}"#, "PIPELINE_OUTPUT_UPDATED"),
            (#"{"outputs":[{"img":"data:image/png;base64,aGk="}]}"#, "PIPELINE_OUTPUT_UPDATED"),
            (#"{"outputs":[{"n":1.0}]}"#, "custom"), (#"{"status":"RUNNING"}"#, "PIPELINE_STATUS_UPDATED"),
            (#"{"outputs":1}"#, "PIPELINE_OUTPUT_UPDATED"), (#"{"outputs":[1]}"#, "PIPELINE_OUTPUT_UPDATED"),
            (#"{"outputs":[]"#, "PIPELINE_OUTPUT_UPDATED"), (#"[]"#, "PIPELINE_OUTPUT_UPDATED"),
            (#"{"outputs":[]}"#, "PIPELINE_ERROR_UPDATED"),
            (#"{"code":3,"message":"bad","details":[]}"#, "PIPELINE_ERROR_UPDATED"),
        ])
    func sseTreeAgrees(text: String, event: String) {
        let (passthrough, tree) = Self.sseEncodings(CanonicalSyncResponseTests.body(text), event: event)
        switch (passthrough, tree) {
        case (.success(let (decoded, block)), .success(let (reference, referenceBlock))):
            #expect(decoded == reference)
            #expect(block == referenceBlock, "\(String(buffer: block)) vs \(String(buffer: referenceBlock))")
        case (.failure(let error), .failure(let reference)):
            #expect(error == reference)
        default:
            Issue.record("the passthrough and the tree disagree on \(text): \(passthrough) vs \(tree)")
        }
    }

    @Test("Whatever the SSE encoder writes for outputs (no blobs, no traces) passes through: 300 seeded events")
    func sseEncoderOutputPassesThrough() throws {
        var random = SplitMix64(seed: 12)
        for round in 0..<300 {
            let outputs = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                CanonicalSyncResponseTests.randomObject(depth: 0, using: &random)
            }
            let event: TriggerEvent =
                round % 2 == 0
                ? .output(name: "PIPELINE_OUTPUT_UPDATED", outputs: outputs) : .end(TriggerResult(outputs: outputs))
            var block = ByteBuffer()
            SSEEncoder.encode(event, into: &block)
            var decoder = SSEDecoder()
            let raw = try #require(try decoder.feed(block).first)
            let decoded = try SSEDecoder.triggerEvent(event: raw.event, data: raw.data, limits: .defaults)
            #expect(decoded == event)
            switch decoded {
            case .output(_, let result): #expect(result.restOutputsJSON == raw.data)
            case .end(let result): #expect(result.restJSON == raw.data)
            default: Issue.record("\(decoded)")
            }
            var again = ByteBuffer()
            SSEEncoder.encode(decoded, into: &again)
            #expect(again == block)
        }
    }
}
