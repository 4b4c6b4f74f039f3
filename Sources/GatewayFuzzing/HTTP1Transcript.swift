import NIOCore
import NIOEmbedded
import NIOHTTP1
import WireCodecs

/// An HTTP/1.1 connection's client bytes, read by the gateway's own request decoder (`HTTP1RequestDecoder`, run
/// here on its own; it is differentially fuzzed against llhttp in ``HTTP1DecoderFuzzing``), against which the
/// gateway's answer is judged by NIO's `HTTPResponseDecoder`, told the request methods so it knows which
/// responses carry no body (HEAD, RFC 9110 §9.3.2). The reference is the gateway's decoder, not llhttp, since
/// the two differ on what is not malformed *yet*: `8n` is a method token still waiting for its space to us
/// (the request-header timeout ends it), and an unknown method at once to llhttp.
///
/// What must hold (checked after the settle phase and again when the connection has closed):
/// - the gateway's bytes parse as a sequence of whole HTTP/1.1 responses (a response cut short at the close
///   does not);
/// - there are no more responses than request heads plus one (the answer to a malformed or over-limit
///   request the reference decoder could not read as a head);
/// - while the connection stays open, every complete request has its response, and a malformed request has
///   not been left without its answer and a close.
struct HTTP1Transcript {
    /// The request heads in order, as the reference decoder read them.
    private(set) var heads: [HTTPRequestHead] = []
    /// Requests whose end (the last byte of their body) arrived.
    private(set) var complete = 0
    /// The reference decoder failed: the bytes stop being HTTP/1.1 somewhere.
    private(set) var malformed = false

    init(client input: [UInt8]) {
        var decoder = HTTP1RequestDecoder()
        var buffer = ByteBuffer(bytes: input)
        do {
            decoding: while true {
                switch try decoder.next(&buffer) {
                case .needMoreBytes: break decoding
                case .head(let head):
                    heads.append(
                        HTTPRequestHead(
                            version: HTTPVersion(major: 1, minor: head.minorVersion),
                            method: HTTPMethod(rawValue: head.method), uri: head.target,
                            headers: HTTPHeaders(head.fieldPairs)))
                case .end: complete += 1
                case .body: break
                }
            }
        } catch {
            malformed = true
        }
    }

    /// Whole final responses in `output`, or why it does not parse. `atClose`: the connection is closed, so
    /// a response delimited by the close ends there and any other unfinished one is an error.
    func responses(_ output: [UInt8], atClose: Bool) -> Result<Int, any Error> {
        let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes))
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.addHandlers(HTTPRequestEncoder(), decoder)
            // One GET past the heads read: the answer to a request the reference decoder could not read.
            for head in heads + [HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")] {
                try channel.writeOutbound(HTTPClientRequestPart.head(head))
                try channel.writeOutbound(HTTPClientRequestPart.end(nil))
            }
            while (try channel.readOutbound(as: ByteBuffer.self)) != nil {}
            try channel.writeInbound(channel.allocator.buffer(bytes: output))
            if atClose { try channel.close().wait() }
        } catch {
            return .failure(error)
        }
        var heads = 0
        var ends = 0
        while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head: heads += 1
            case .end: ends += 1
            case .body: break
            }
        }
        // NIO's decoder lets a body cut short by the close pass silently: a head without its end is one.
        if atClose, heads > ends { return .failure(ResponseCutShort()) }
        return .success(ends)
    }

    func allAnswered(_ output: [UInt8]) -> Bool {
        guard case .success(let answered) = responses(output, atClose: false) else { return true }
        return answered >= complete && !malformed
    }

    func violation(_ output: [UInt8], closed: Bool) -> String? {
        let answered: Int
        switch responses(output, atClose: closed) {
        case .failure(let error):
            return "the HTTP/1.1 answer does not parse (\(error)): \(Self.excerpt(output))"
        case .success(let count):
            answered = count
        }
        if answered > heads.count + 1 {
            return "\(answered) HTTP/1.1 responses to \(heads.count) requests"
        }
        if !closed, answered < complete {
            return "open HTTP/1.1 connection with \(complete) complete requests and \(answered) responses"
        }
        if !closed, malformed {
            return "a malformed HTTP/1.1 request left the connection open"
        }
        return nil
    }

    struct ResponseCutShort: Error, CustomStringConvertible {
        var description: String { "a response was cut short by the close" }
    }

    static func excerpt(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(400), as: UTF8.self).debugDescription
    }
}
