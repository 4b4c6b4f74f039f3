import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("SSE")
struct SSETests {
    static let events: [TriggerEvent] = [
        .status(name: "PIPELINE_STATUS_UPDATED", data: ["status": .string("RUNNING")]),
        .output(name: "", outputs: [["text": .string("line one\nline two")]]),
        .output(name: "COMPONENT_OUTPUT_UPDATED", outputs: [["partial": .number(1)]]),
        .end(
            TriggerResult(
                outputs: [["text": .string("done")]],
                metadata: TriggerMetadata(traces: ["c": Trace(statuses: [.completed])])
            )
        ),
    ]

    @Test("Events encode as one event/data block each")
    func encode() {
        var out = ByteBuffer()
        for event in Self.events { SSEEncoder.encode(event, into: &out) }
        SSEEncoder.encode(.error(GatewayError(.deadlineExceeded, "too slow")), into: &out)
        #expect(
            out.text
                == "event: PIPELINE_STATUS_UPDATED\ndata: {\"status\":\"RUNNING\"}\n\n"
                + "event: PIPELINE_OUTPUT_UPDATED\ndata: {\"outputs\":[{\"text\":\"line one\\nline two\"}]}\n\n"
                + "event: COMPONENT_OUTPUT_UPDATED\ndata: {\"outputs\":[{\"partial\":1}]}\n\n"
                + "event: PIPELINE_OUTPUT_UPDATED\ndata: {\"outputs\":[{\"text\":\"done\"}],\"metadata\":{\"traces\":"
                + "{\"c\":{\"statuses\":[\"COMPLETED\"],\"inputs\":[],\"outputs\":[],\"computeTimeInSeconds\":0}}}}\n\n"
                + "event: PIPELINE_ERROR_UPDATED\ndata: {\"code\":4,\"message\":\"too slow\",\"details\":[]}\n\n"
        )
    }

    @Test("Encoded events decode back to the same TriggerEvents, fed whole or byte by byte", arguments: [0, 1])
    func roundTrip(byteByByte: Int) throws {
        // An empty output name is sent as PIPELINE_OUTPUT_UPDATED, so name it here to compare. An error event is
        // the pipeline's own failure: it decodes as an application error with the same google.rpc code.
        var all = Self.events + [.error(GatewayError(.application(3), "bad", details: [["k": .string("v")]]))]
        all[1] = .output(name: SSEEncoder.outputEvent, outputs: [["text": .string("line one\nline two")]])
        var stream = ByteBuffer()
        for event in all { SSEEncoder.encode(event, into: &stream) }
        var decoder = SSEDecoder()
        var raw: [(event: String, data: ByteBuffer)] = []
        if byteByByte == 1 {
            for byte in stream.readableBytesView { raw += try decoder.feed(ByteBuffer(bytes: [byte])) }
        } else {
            raw = try decoder.feed(stream)
        }
        let decoded = try raw.map { try SSEDecoder.triggerEvent(event: $0.event, data: $0.data, limits: .defaults) }
        #expect(decoded == all)
    }

    @Test("The decoder handles CR, CRLF split across chunks, comments, multi-line data and data-less events")
    func decoderEdges() throws {
        var decoder = SSEDecoder()
        var events = try decoder.feed(buffer(": comment\r\nevent: a\r"))
        events += try decoder.feed(buffer("\ndata: one\rdata:two\n\nevent: skipped\nid: 7\n\ndata:  x\n"))
        events += try decoder.feed(buffer("\n"))
        #expect(events.map(\.event) == ["a", ""])
        #expect(events.map { String(buffer: $0.data) } == ["one\ntwo", " x"])
        // An unterminated event at the end is never dispatched.
        #expect(try decoder.feed(buffer("data: partial\n")).isEmpty)
    }

    /// The line-end search (memchr for LF, the next CR remembered until passed) against every way a stream can be
    /// cut: LF-ended lines before a CR-ended one, a CR at a chunk's end before the LF that completes it, CRLF and a
    /// lone CR in one chunk.
    @Test("Mixed LF, CR and CRLF lines decode the same fed whole, byte by byte, or cut anywhere in two")
    func mixedLineEndsAnyCut() throws {
        let text =
            "event: PIPELINE_OUTPUT_UPDATED\ndata: {\"a\":1}\n\n: ping\r\nevent: custom\rdata: x\ndata: y\r\r"
            + "data: z\r\n\r\nevent: message\ndata: m\n\nevent: PIPELINE_STATUS_UPDATED\r\ndata: s\r\n\r\n"
        let bytes = Array(text.utf8)
        func decode(_ pieces: [ArraySlice<UInt8>]) throws -> [String] {
            var decoder = SSEDecoder()
            var out: [String] = []
            for piece in pieces {
                out += try decoder.feed(ByteBuffer(bytes: piece)).map { "\($0.event)|\(String(buffer: $0.data))" }
            }
            #expect(decoder.comments == 1)
            return out
        }
        let expected = [
            "PIPELINE_OUTPUT_UPDATED|{\"a\":1}", "custom|x\ny", "|z", "|m", "PIPELINE_STATUS_UPDATED|s",
        ]
        #expect(try decode([bytes[...]]) == expected)
        #expect(try decode(bytes.indices.map { bytes[$0...$0] }) == expected)
        for cut in 1..<bytes.count {
            #expect(try decode([bytes[..<cut], bytes[cut...]]) == expected, "cut at \(cut)")
        }
    }

    /// Review 17, finding 2: a runner's events without an `event:` line (sse-starlette's default) were relayed as
    /// `event: message`, so Instill clients dispatching on PIPELINE_STATUS_UPDATED / PIPELINE_OUTPUT_UPDATED missed
    /// them. `event: message` is the same SSE event type, and is relayed the same way.
    @Test("Unnamed events (and events named `message`) are relayed under the API's default names")
    func unnamedEvents() throws {
        var decoder = SSEDecoder()
        let raw = try decoder.feed(
            buffer(
                "data: {\"status\":\"RUNNING\"}\n\n" + "data: {\"outputs\":[{\"p\":1}]}\n\n"
                    + "event: message\ndata: {\"outputs\":[{\"p\":2}]}\n\n" + "event: custom\ndata: {\"n\":1}\n\n"
                    + "data: {\"outputs\":[{\"p\":3}],\"metadata\":{}}\n\n"))
        #expect(raw.map(\.event) == ["", "", "", "custom", ""])
        var relayed = ByteBuffer()
        for event in raw {
            SSEEncoder.encode(
                try SSEDecoder.triggerEvent(event: event.event, data: event.data, limits: .defaults), into: &relayed)
        }
        let names = String(buffer: relayed).split(separator: "\n").filter { $0.hasPrefix("event: ") }
        #expect(
            names == [
                "event: \(SSEEncoder.statusEvent)", "event: \(SSEEncoder.outputEvent)",
                "event: \(SSEEncoder.outputEvent)",
                "event: custom", "event: \(SSEEncoder.outputEvent)",
            ])
    }

    @Test("Comment lines (keep-alives) are counted, whole or split across chunks, and dispatch nothing")
    func commentsCounted() throws {
        var decoder = SSEDecoder()
        #expect(try decoder.feed(buffer(": ping\n\n:\r\n: pi")).isEmpty)
        #expect(decoder.comments == 2)
        #expect(try decoder.feed(buffer("ng\ndata: {}\n\n")).map(\.event) == [""])
        #expect(decoder.comments == 3)
    }

    @Test("An event past the size cap fails")
    func sizeCap() {
        var decoder = SSEDecoder(maxEventBytes: 16)
        let error = gatewayError { _ = try decoder.feed(buffer("data: 0123456789abcdefXYZ")) }
        #expect(error?.code == .backendFailed)
    }

    @Test("An http runner's event may hold Python's NaN and infinities: read as numbers, not a backend failure")
    func nonFiniteData() throws {
        let data = buffer(#"{"outputs":[{"p":NaN,"q":-Infinity}],"metadata":{}}"#)
        for event in [SSEEncoder.outputEvent, "PIPELINE_COMPLETED"] {
            let decoded = try SSEDecoder.triggerEvent(event: event, data: data, limits: .defaults)
            let result: TriggerResult
            switch decoded {
            case .output(_, let output): result = output
            case .end(let end): result = end
            default: Issue.record("\(decoded)"); continue
            }
            #expect(result.outputs.first?["p"]?.numberValue?.isNaN == true)
            #expect(result.outputs.first?["q"] == .number(-.infinity))
        }
    }

    @Test("Event data that is not JSON is a backend failure")
    func badData() {
        let error = gatewayError {
            _ = try SSEDecoder.triggerEvent(event: "PIPELINE_OUTPUT_UPDATED", data: buffer("nope"), limits: .defaults)
        }
        #expect(error?.code == .backendFailed)
    }
}
