import Foundation
import NIOCore
import SeededRandom
import Testing
import TriggerModel

@testable import WireCodecs
import TestScheduling

/// A REST trigger body's batch carried to an http runner as the client's own text (issue 11): only when the
/// runner's body is byte for byte what decoding and re-encoding would send, with the same inputs and the same
/// errors for everything else.
@Suite("REST request passthrough")
struct RESTRequestPassthroughTests {
    static let ref = PipelineRef(namespace: "demo", pipeline: "echo", release: "v1")

    /// The http runner's body for `text` through `decodeBatch` (which may carry the text) and through the decoded
    /// inputs, which is how every body was handled before; and the two batches.
    static func bodies(_ text: String, limits: CodecLimits = .defaults) throws -> (
        carried: ByteBuffer, tree: ByteBuffer, batch: TriggerBatch, reference: [TriggerInput]
    ) {
        let batch = try RESTTriggerBody.decodeBatch(json: ByteBuffer(string: text), limits: limits)
        let reference = try RESTTriggerBody.decode(
            json: ByteBuffer(string: text), limits: limits, keepCanonicalBase64: true)
        func runBody(_ batch: TriggerBatch) -> ByteBuffer {
            var request = TriggerRequest(ref: ref, inputs: [], requestID: "req-1", returnTraces: true)
            request.batch = batch
            var body = ByteBuffer()
            BackendHTTPBody.encode(request: request, into: &body)
            return body
        }
        return (runBody(batch), runBody(TriggerBatch(reference)), batch, reference)
    }

    @Test(
        "Canonical bodies reach the runner as the client's text",
        arguments: [
            #"{"data":[{"variable":{"prompt":"hello"}}]}"#,
            #"{"data":[{"variable":{}}]}"#,
            #"{"data":[{"variable":{"a":1},"secret":{}},{"variable":{"b":[true,null,{"c":"d"}]}}]}"#,
            #"{"data":[{"variable":{"s":"quote \" nl \n ctl \u0001","é":"日本 😀","n":[0,-1,0.5,1e-05,2.0]}}]}"#,
            #"{"inputs":[{"prompt":"hello"},{}]}"#,
            #"{"data":[{"variable":{"data:":"keys are never blobs"}}]}"#,
        ]
    )
    func carried(text: String) throws {
        let (carried, tree, batch, reference) = try Self.bodies(text)
        #expect(batch.httpRunData != nil)
        #expect(carried == tree)
        #expect(batch.inputs == reference)
    }

    @Test("The runner's body is the client's variables with the runner's element wrapping")
    func runnerBody() throws {
        let (carried, _, _, _) = try Self.bodies(#"{"inputs":[{"prompt":"hi"}]}"#)
        #expect(
            String(buffer: carried)
                == #"{"namespace":"demo","pipeline":"echo","release":"v1","request_id":"req-1","#
                + #""return_traces":true,"data":[{"variable":{"prompt":"hi"},"secret":{}}]}"#)
    }

    @Test("Whitespace outside strings is dropped, as re-encoding drops it")
    func whitespace() throws {
        let text = " {\n \"data\" : [ { \"variable\" : { \"a b\" : [ 1 , \" x \\\" y \" ] } , \"secret\" : { } } ] }\n"
        let (carried, tree, batch, reference) = try Self.bodies(text)
        #expect(batch.httpRunData.map { String(buffer: $0) } == #"{"variable":{"a b":[1," x \" y "]},"secret":{}}"#)
        #expect(carried == tree)
        #expect(batch.inputs == reference)
    }

    @Test(
        "Bodies re-encoding would change, or that need the decoder's choices, are decoded as before",
        arguments: [
            #"{"data":[{"variable":{"s":"a\/b"}}]}"#,  // escaped slash
            #"{"data":[{"variable":{"n":1.00}}]}"#,  // written as 1.0
            #"{"data":[{"variable":{"f":"data:text/plain;base64,aGk="}}]}"#,  // a blob
            #"{"data":[{"variable":{"a":1,"a":2}}]}"#,  // merged by the parser
            #"{"data":[{"variable":{"a":1},"secret":{"k":"v"}}]}"#,  // a secret, written sorted
            #"{"data":[{"secret":{},"variable":{"a":1}}]}"#,  // members in another order
            #"{"data":[{}]}"#,  // no variable
            #"{"data":[{"variable":null}]}"#,
            #"{"data":[{"variable":{}}],"inputs":[{"b":2}]}"#,  // both: `data` wins, decoded
            #"{"extra":1,"data":[{"variable":{}}]}"#,
            #"{"data":null,"inputs":[{"b":2}]}"#,
        ]
    )
    func decoded(text: String) throws {
        let (carried, tree, batch, reference) = try Self.bodies(text)
        #expect(batch.httpRunData == nil)
        #expect(carried == tree)
        #expect(batch.inputs == reference)
    }

    @Test(
        "Refused bodies give the decoder's error",
        arguments: [
            #"{"data":[]}"#, #"{"inputs":[]}"#, #"{"data":[1]}"#, #"{"data":[{"variable":1}]}"#, #"{"data":{}}"#,
            #"{"data":[{"variable":{}}]"#, #"{"data":[{"variable":{}}]} x"#, "", "[]",
        ]
    )
    func refused(text: String) {
        let limits = CodecLimits.defaults
        let reference = #expect(throws: GatewayError.self) {
            try RESTTriggerBody.decode(json: ByteBuffer(string: text), limits: limits, keepCanonicalBase64: true)
        }
        let error = #expect(throws: GatewayError.self) {
            try RESTTriggerBody.decodeBatch(json: ByteBuffer(string: text), limits: limits)
        }
        #expect(error.map { "\($0)" } == reference.map { "\($0)" })
    }

    /// A body of `elements` elements whose variables nest `depth` levels and hold `members` members in all.
    static func body(elements: Int, depth: Int = 1, width: Int = 1) -> String {
        var variables = "{" + (0..<width).map { "\"k\($0)\":1" }.joined(separator: ",") + "}"
        for _ in 1..<depth { variables = "{\"n\":\(variables)}" }
        return #"{"data":["# + Array(repeating: "{\"variable\":\(variables)}", count: elements).joined(separator: ",")
            + "]}"
    }

    @Test("The batch limit: carried at it, refused with the decoder's error past it")
    func batchLimit() throws {
        var limits = CodecLimits.defaults
        limits.maxBatch = 3
        #expect(try Self.bodies(Self.body(elements: 3), limits: limits).batch.httpRunData != nil)
        let past = Self.body(elements: 4)
        #expect(RESTRequestPassthrough.batch(of: ByteBuffer(string: past), limits: limits) == nil)
        #expect(throws: GatewayError.self) {
            try RESTTriggerBody.decodeBatch(json: ByteBuffer(string: past), limits: limits)
        }
    }

    @Test("The depth limit, counted as the parser counts it: carried at it, refused past it")
    func depthLimit() throws {
        var limits = CodecLimits.defaults
        // The body, `data`, the element and the variables take four levels.
        limits.maxDepth = 6
        #expect(try Self.bodies(Self.body(elements: 1, depth: 3), limits: limits).batch.httpRunData != nil)
        let past = Self.body(elements: 1, depth: 4)
        #expect(RESTRequestPassthrough.batch(of: ByteBuffer(string: past), limits: limits) == nil)
        let error = #expect(throws: GatewayError.self) {
            try RESTTriggerBody.decodeBatch(json: ByteBuffer(string: past), limits: limits)
        }
        #expect(error.map { "\($0)" }?.contains("nesting deeper than the limit of 6 levels") == true)
    }

    @Test("The member limit, counted as the parser counts it: carried at it, refused past it")
    func memberLimit() throws {
        var limits = CodecLimits.defaults
        // `data`, two elements, their `variable` members and three members in each: 1 + 2 × (1 + 1 + 3) = 11.
        let text = Self.body(elements: 2, width: 3)
        limits.maxJSONMembers = 11
        #expect(try Self.bodies(text, limits: limits).batch.httpRunData != nil)
        limits.maxJSONMembers = 10
        #expect(RESTRequestPassthrough.batch(of: ByteBuffer(string: text), limits: limits) == nil)
        let error = #expect(throws: GatewayError.self) {
            try RESTTriggerBody.decodeBatch(json: ByteBuffer(string: text), limits: limits)
        }
        #expect(error.map { "\($0)" }?.contains("more than the limit of 10") == true)
    }

    @Test("Objects of more keys than the scan checks for repeats are decoded")
    func keyLimit() throws {
        let atLimit = Self.body(elements: 1, width: CanonicalJSONScanner.maxCheckedKeys)
        #expect(try Self.bodies(atLimit).batch.httpRunData != nil)
        let past = Self.body(elements: 1, width: CanonicalJSONScanner.maxCheckedKeys + 1)
        let (carried, tree, batch, _) = try Self.bodies(past)
        #expect(batch.httpRunData == nil)
        #expect(carried == tree)
    }
}

extension RESTRequestPassthroughTests {
    @Test(
        "Whatever the runner's encoder writes for a batch (no blobs, no secrets) is carried: 500 seeded batches",
        .cpuBound)
    func encoderOutputCarried() throws {
        var random = SplitMix64(seed: 12)
        for _ in 0..<500 {
            let inputs = (0..<Int.random(in: 1...3, using: &random)).map { _ in
                TriggerInput(variables: CanonicalSyncResponseTests.randomObject(depth: 1, using: &random))
            }
            // The runner's own body is a trigger body too (`data` with `variable` and `secret`), with more members.
            var text = ByteBuffer(string: #"{"data":["#)
            var runBody = ByteBuffer()
            BackendHTTPBody.encode(
                request: TriggerRequest(ref: Self.ref, inputs: inputs, requestID: "r"), into: &runBody)
            let data = String(buffer: runBody).split(separator: #""data":["#, maxSplits: 1)[1]
            text.writeString(String(data))
            let (carried, tree, batch, reference) = try Self.bodies(String(buffer: text))
            #expect(batch.httpRunData != nil, "\(String(buffer: text))")
            #expect(carried == tree)
            #expect(reference == inputs)
            #expect(batch.inputs == inputs)
        }
    }
}

extension RESTRequestPassthroughTests {
    /// A canonical body of exactly `bytes` bytes.
    static func body(bytes: Int) -> String {
        let frame = #"{"data":[{"variable":{"s":""}}]}"#
        return #"{"data":[{"variable":{"s":""# + String(repeating: "x", count: bytes - frame.utf8.count) + #""}}]}"#
    }

    @Test("Bodies up to maxBodyBytes are carried; larger ones are decoded, to the same runner body")
    func sizeLimit() throws {
        let atLimit = Self.body(bytes: RESTRequestPassthrough.maxBodyBytes)
        #expect(atLimit.utf8.count == RESTRequestPassthrough.maxBodyBytes)
        #expect(try Self.bodies(atLimit).batch.httpRunData != nil)
        let (carried, tree, batch, _) = try Self.bodies(Self.body(bytes: RESTRequestPassthrough.maxBodyBytes + 1))
        #expect(batch.httpRunData == nil)
        #expect(carried == tree)
    }
}

extension RESTRequestPassthroughTests {
    /// `{"<prefix>0":1,…}` with `count` keys, the last one's value `last`.
    static func object(_ prefix: String, count: Int, last: String = "1") -> String {
        "{" + (0..<count).map { "\"\(prefix)\($0)\":\($0 == count - 1 ? last : "1")" }.joined(separator: ",") + "}"
    }

    @Test("Repeated keys are found past the keys the scanner holds inline, and sibling objects' keys never clash")
    func keysPastInlineStorage() throws {
        // Three levels of 8 keys: the innermost object's keys are the 17th to the 24th on the scanner's stack.
        let inner = Self.object("c", count: 8)
        let middle = Self.object("b", count: 8, last: inner)
        // Siblings with the same keys at the deepest level, then the outer object goes on after them.
        let outer = "{\"a0\":\(middle),\"a1\":\(middle),\"a2\":[\(inner),\(inner)]}"
        let cases: [(text: String, carried: Bool)] = [
            (outer, true),
            // A key repeated among the innermost ones (past the inline storage).
            (outer.replacingOccurrences(of: "\"c7\"", with: "\"c0\""), false),
            // A key of the outer object repeated after the nested ones closed.
            (outer.replacingOccurrences(of: "\"a2\"", with: "\"a0\""), false),
        ]
        for (variables, carried) in cases {
            let (runBody, tree, batch, reference) = try Self.bodies(#"{"data":[{"variable":\#(variables)}]}"#)
            #expect((batch.httpRunData != nil) == carried, "\(variables)")
            #expect(runBody == tree)
            #expect(batch.inputs == reference)
        }
    }
}
