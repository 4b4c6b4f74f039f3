import Testing

@testable import HTTP2Engine

/// Both roles send `SETTINGS_NO_RFC7540_PRIORITIES = 1` (RFC 9218 §2.1, as nghttpx's frontend does): libnghttp2 then
/// keeps no RFC 7540 priority tree, and frees a stream when it closes instead of keeping up to 100 closed ones per
/// connection for the tree (issue 11).
@Suite("HTTP/2 sessions without RFC 7540 priorities")
struct NoRFC7540PrioritiesTests {
    @Test("each side announces it, and a finished stream is freed at once on both")
    func announcedAndClosedStreamsFreed() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let stream = try pair.startRequest(body: "hello")
        try pair.interact()
        #expect(pair.serverDelegate.events(for: 1).last == .closed(1, .noError))
        #expect(pair.clientDelegate.events(for: 1).last == .closed(1, .noError))
        #expect(pair.clientSession.peerDisabledRFC7540Priorities)
        #expect(pair.serverSession.peerDisabledRFC7540Priorities)
        // With the priority tree, the server kept the closed stream (libnghttp2 still found it).
        #expect(!pair.serverSession.libraryHoldsStream(stream))
        #expect(!pair.clientSession.libraryHoldsStream(stream))
    }
}
