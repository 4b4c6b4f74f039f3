import HTTP2Engine
import Testing

/// A server session frees a stream when it closes (`nghttp2_option_set_no_closed_streams`), where libnghttp2 kept up
/// to `SETTINGS_MAX_CONCURRENT_STREAMS` closed ones per connection for its RFC 7540 priority tree (issue 11); the
/// priority tree itself, and so how streams' DATA interleave, is unchanged.
@Suite("HTTP/2 closed streams")
struct ClosedStreamsTests {
    @Test("a finished stream is freed at once on both sides; the next streams still go through")
    func closedStreamsFreed() throws {
        let pair = try ConnectionPair()
        pair.serveEcho()
        let first = try pair.startRequest(body: "hello")
        try pair.interact()
        #expect(pair.serverDelegate.events(for: first.rawValue).last == .closed(first.rawValue, .noError))
        #expect(pair.clientDelegate.events(for: first.rawValue).last == .closed(first.rawValue, .noError))
        // Kept for the priority tree, the server's closed stream was still found here.
        #expect(!pair.serverSession.libraryHoldsStream(first))
        #expect(!pair.clientSession.libraryHoldsStream(first))
        let second = try pair.startRequest(body: "again")
        try pair.interact()
        #expect(pair.clientDelegate.body(second.rawValue) == "again")
        #expect(!pair.serverSession.libraryHoldsStream(second))
    }
}
