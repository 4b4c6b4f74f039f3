import HTTP2Engine
import Testing

/// A connection's long field values are decoded once and handed out again while they repeat (issue 11).
@Suite("HTTP/2 recent field values")
struct RecentFieldValuesTests {
    /// The string's storage object: two strings with the same one share a single decoded copy.
    private func storage(_ string: String) -> UInt64 {
        unsafeBitCast(string, to: (UInt64, UInt64).self).1
    }

    private func string(_ text: [UInt8], in values: inout RecentFieldValues) -> String {
        text.withUnsafeBufferPointer { values.string($0, name: ":path") }
    }

    @Test("a repeated long value is the stored string; short and over-long values are decoded and not kept")
    func reuse() {
        var values = RecentFieldValues()
        let path = Array("/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline".utf8)
        let first = string(path, in: &values)
        let again = string(path, in: &values)
        #expect(first == String(decoding: path, as: UTF8.self))
        #expect(again == first)
        #expect(storage(again) == storage(first))
        #expect(values.count == 1)

        // 15 bytes fit in a String itself (nothing to save); past the bound, not kept.
        _ = string(Array("127.0.0.1:43210".utf8), in: &values)
        let long = Array(repeating: UInt8(ascii: "a"), count: RecentFieldValues.maxLength + 1)
        #expect(string(long, in: &values) == String(decoding: long, as: UTF8.self))
        #expect(values.count == 1)
        let atBound = Array(repeating: UInt8(ascii: "b"), count: RecentFieldValues.maxLength)
        #expect(storage(string(atBound, in: &values)) == storage(string(atBound, in: &values)))
        #expect(values.count == 2)
    }

    @Test("a value differing in one byte, or of another length, is not the stored one")
    func exactMatchOnly() {
        var values = RecentFieldValues()
        let agent = Array("grpc-python/1.70.0 grpc-c/46.0.0 (linux; chttp2)".utf8)
        let first = string(agent, in: &values)
        var changed = agent
        changed[changed.count - 2] = UInt8(ascii: "3")
        let other = string(changed, in: &values)
        #expect(other == String(decoding: changed, as: UTF8.self))
        #expect(other != first)
        let shorter = string(Array(agent.dropLast()), in: &values)
        #expect(shorter == String(decoding: agent.dropLast(), as: UTF8.self))
        #expect(values.count == 3)
    }

    @Test("the slots are replaced in turn once all are used")
    func replacement() {
        var values = RecentFieldValues()
        let texts = (0...RecentFieldValues.slotCount).map { Array("x-value-number-\($0)-of-the-test".utf8) }
        let made = texts.map { string($0, in: &values) }
        #expect(values.count == RecentFieldValues.slotCount)
        // The first was replaced by the last: decoded anew (and stored again, over the second).
        #expect(storage(string(texts[0], in: &values)) != storage(made[0]))
        // The last three are still there.
        for index in 2...RecentFieldValues.slotCount {
            #expect(storage(string(texts[index], in: &values)) == storage(made[index]))
        }
    }

    @Test("only the fields that repeat are kept: not per-message values, not credentials")
    func repeatingFields() {
        #expect(RecentFieldValues.repeats(name: ":path"))
        #expect(RecentFieldValues.repeats(name: ":authority"))
        #expect(RecentFieldValues.repeats(name: "user-agent"))
        for name in ["request-id", "traceparent", "idempotency-key", "authorization", ":status", "content-type", "x"] {
            #expect(!RecentFieldValues.repeats(name: name), "\(name)")
        }
        // A value of such a field, or of a name the engine does not know, is decoded and not kept.
        var values = RecentFieldValues()
        let id = Array("0123456789abcdef0123456789abcdef".utf8)
        for name in ["request-id", nil] as [String?] {
            let first = id.withUnsafeBufferPointer { values.string($0, name: name) }
            let again = id.withUnsafeBufferPointer { values.string($0, name: name) }
            #expect(first == String(decoding: id, as: UTF8.self) && again == first)
            #expect(storage(first) != storage(again))
        }
        #expect(values.count == 0)
    }

    @Test("on a connection, a repeated long :path arrives as one string; a repeated long request-id does not")
    func onAConnection() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let path = "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline"
        let requestID = "0123456789abcdef0123456789abcdef"
        for _ in 0..<2 {
            _ = try pair.clientSession.startRequest(
                headers: ConnectionPair.requestHeaders(path: path, extra: [("request-id", requestID)]),
                endStream: true)
        }
        try pair.interact()
        let blocks = pair.serverDelegate.events.compactMap { event -> HTTP2Headers? in
            if case .headers(_, let headers, _) = event { return headers } else { return nil }
        }
        try #require(blocks.count == 2)
        let paths = blocks.compactMap { $0.first(name: ":path") }
        let ids = blocks.compactMap { $0.first(name: "request-id") }
        #expect(paths == [path, path] && ids == [requestID, requestID])
        #expect(storage(paths[0]) == storage(paths[1]))
        #expect(storage(ids[0]) != storage(ids[1]))
    }

    @Test("invalid UTF-8 is repaired as String(decoding:) does, and never matches its repaired copy")
    func invalidUTF8() {
        var values = RecentFieldValues()
        let bytes = Array("a-long-enough-value-".utf8) + [0xFF, 0xFE] + Array("-end".utf8)
        let first = string(bytes, in: &values)
        #expect(first == String(decoding: bytes, as: UTF8.self))
        let repaired = Array(first.utf8)
        #expect(repaired != bytes)
        #expect(string(bytes, in: &values) == first)
    }
}
