import HTTP2Engine
import NIOCore

extension ConnectionPair {
    /// Makes the server answer each request, once its body has ended, with `:status 200`, the request body
    /// echoed, and `grpc-status: 0` trailers; all from inside the delegate callbacks.
    func serveEcho() {
        let delegate = self.serverDelegate
        // Weak: these closures are stored in the delegate itself, so a strong capture would be a cycle (and a
        // leak under ASan) that outlives the pair.
        let respond = { [weak delegate] (session: NGHTTP2Session, stream: HTTP2StreamID) in
            guard let delegate else { return }
            session.sendResponseHeaders(
                stream: stream,
                headers: [":status": "200", "content-type": "application/grpc"],
                endStream: false
            )
            session.sendData(stream: stream, ByteBuffer(string: delegate.body(stream.rawValue)), endStream: false)
            session.sendTrailers(stream: stream, ["grpc-status": "0"])
        }
        delegate.onHeaders = { session, stream, _, endStream in
            if endStream { respond(session, stream) }
        }
        delegate.onData = { session, stream, _, endStream in
            if endStream { respond(session, stream) }
        }
    }

    /// Starts a request with `body` (ended) on the client.
    @discardableResult
    func startRequest(body: String, path: String = "/pkg.Service/Method") throws -> HTTP2StreamID {
        let stream = try self.clientSession.startRequest(headers: Self.requestHeaders(path: path), endStream: false)
        self.clientSession.sendData(stream: stream, ByteBuffer(string: body), endStream: true)
        return stream
    }
}
