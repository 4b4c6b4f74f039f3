import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// The session calls its delegate through a borrowed reference (`NGHTTP2Session.withDelegate`, issue 11): no
/// retain around the call. A delegate that the session alone holds and that closes the connection from inside
/// one of its callbacks must still live until that callback returns, and be freed after it (no cycle left).
/// It can fail only in an optimised build (`scripts/release-engine`, which CI runs): at -Onone the compiler
/// retains the delegate around the call anyway. With the session's retirement of the slot removed, the -O run
/// reports the delegate freed inside its callback (and crashes on the freed object).
@Suite("HTTP/2 session delegate lifetime")
struct DelegateLifetimeTests {
    /// What the test's delegate saw, kept outside it (the delegate is freed during the test).
    final class Observations {
        /// One entry per `deinit`: whether a callback of the delegate was running then.
        var freedInsideCall: [Bool] = []
        /// Whether the session had dropped its delegate when the close returned (what makes the test mean anything).
        var sessionDroppedIt = false
        var callbacksCompleted = 0
    }

    /// Closes its channel from inside `didReceiveHeaders`, then still uses itself.
    final class ClosingDelegate: HTTP2SessionDelegate {
        weak var channel: EmbeddedChannel?
        let observations: Observations
        private var callDepth = 0

        init(_ observations: Observations) { self.observations = observations }

        deinit { self.observations.freedInsideCall.append(self.callDepth > 0) }

        func session(
            _ session: NGHTTP2Session, didReceiveHeaders headers: HTTP2Headers, stream: HTTP2StreamID, endStream: Bool
        ) {
            self.callDepth += 1
            // Synchronous on an EmbeddedChannel: channelInactive reaches the session, which drops its delegate.
            self.channel?.close(promise: nil)
            self.observations.sessionDroppedIt = session.delegate == nil
            self.observations.callbacksCompleted += 1  // `self` must still be alive here
            self.callDepth -= 1
        }

        func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, stream: HTTP2StreamID, endStream: Bool)
        {}
        func session(_ session: NGHTTP2Session, didReceiveTrailers trailers: HTTP2Headers, stream: HTTP2StreamID) {}
        func session(_ session: NGHTTP2Session, streamClosed stream: HTTP2StreamID, errorCode: HTTP2ErrorCode) {}
    }

    @Test("a delegate that closes the connection inside its callback lives until the callback returns, then is freed")
    func closingInsideACallback() throws {
        let server = EmbeddedChannel()
        let client = EmbeddedChannel()
        let observations = Observations()
        weak var weakDelegate: ClosingDelegate?
        do {
            // Held by the session alone from here.
            let delegate = ClosingDelegate(observations)
            delegate.channel = server
            weakDelegate = delegate
            _ = try server.pipeline.syncOperations.configureHTTP2Session(role: .server, delegate: delegate)
        }
        let clientSession = try client.pipeline.syncOperations.configureHTTP2Session(
            role: .client, delegate: RecordingDelegate())
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try server.connect(to: address).wait()
        try client.connect(to: address).wait()
        _ = try clientSession.startRequest(headers: ConnectionPair.requestHeaders(), endStream: true)
        #expect(weakDelegate != nil)

        // The client's preface, SETTINGS and request reach the server in one read: its HEADERS callback closes.
        var request = ByteBuffer()
        while let bytes = try client.readOutbound(as: ByteBuffer.self) { request.writeImmutableBuffer(bytes) }
        try server.writeInbound(request)

        #expect(observations.sessionDroppedIt)
        #expect(observations.callbacksCompleted == 1)
        #expect(observations.freedInsideCall == [false], "freed while its callback ran, or not freed once it returned")
        #expect(weakDelegate == nil)
        _ = try? client.finish(acceptAlreadyClosed: true)
        _ = try? server.finish(acceptAlreadyClosed: true)
    }
}
