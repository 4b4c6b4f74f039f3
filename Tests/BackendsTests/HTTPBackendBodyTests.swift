import NIOCore
import NIOEmbedded
import Testing
import TriggerModel
import WireCodecs

@testable import Backends
import TestScheduling

/// The http backend connection's bodies (issue 12): responses are gathered linearly (counted storage moves,
/// never timing), and the request body goes out in bounded chunks as the channel becomes writable.
@Suite("HTTP backend bodies", .cpuBound)
struct HTTPBackendBodyTests {
    static let chunk = 4096
    static let chunks = 4096

    /// A 200 head's bytes: framed by `contentLength`, or chunked when nil.
    static func head(contentLength: Int?, contentType: String = "application/json") -> ByteBuffer {
        let framing = contentLength.map { "content-length: \($0)" } ?? "transfer-encoding: chunked"
        return ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-type: \(contentType)\r\n\(framing)\r\n\r\n")
    }

    /// `data` as one chunk of a chunked body (RFC 9112 §7.1).
    static func chunked(_ data: ByteBuffer) -> ByteBuffer {
        var bytes = ByteBuffer(string: String(data.readableBytes, radix: 16) + "\r\n")
        bytes.writeImmutableBuffer(data)
        bytes.writeString("\r\n")
        return bytes
    }

    /// The parts `bytes` decode to (a whole head, body slices, the end).
    static func parts(_ bytes: ByteBuffer, decoder: inout HTTP1ResponseDecoder) throws -> [HTTP1ResponseDecoder.Part] {
        var bytes = bytes
        var parts: [HTTP1ResponseDecoder.Part] = []
        while true {
            let part = try decoder.next(&bytes)
            if case .needMoreBytes = part { break }
            parts.append(part)
        }
        return parts
    }

    static func chunk(_ i: Int) -> ByteBuffer {
        ByteBuffer(repeating: UInt8(truncatingIfNeeded: i), count: chunk)
    }

    @Test(
        "a 16 MiB response in 4 KiB reads: storage moves O(log n) times, once with Content-Length",
        arguments: [false, true]
    )
    func responseGathering(declared: Bool) throws {
        let channel = EmbeddedChannel()
        let handler = HTTPBackendClientHandler()
        try channel.pipeline.syncOperations.addHandler(handler)
        let promise = channel.eventLoop.makePromise(of: HTTPBackendResponse.self)
        handler.start(promise: promise, maxResponseBytes: 32 << 20)
        let total = Self.chunk * Self.chunks
        try channel.writeInbound(Self.head(contentLength: declared ? total : nil))
        var moves = 0
        var last: UInt?
        for i in 0..<Self.chunks {
            try channel.writeInbound(declared ? Self.chunk(i) : Self.chunked(Self.chunk(i)))
            // With Content-Length the last chunk ends the response, whose body is then handed over (nil here).
            guard let address = handler.gatheredStorageAddress else { continue }
            if address != last { moves += 1 }
            last = address
        }
        #expect(moves >= 1 && moves <= (declared ? 1 : 20), "response storage moved \(moves) times")
        if !declared { try channel.writeInbound(ByteBuffer(string: "0\r\n\r\n")) }
        let response = try promise.futureResult.wait()
        #expect(response.body.readableBytes == total)
        #expect(response.body.getInteger(at: total - 1, as: UInt8.self) == UInt8(truncatingIfNeeded: Self.chunks - 1))
        _ = try? channel.finish()
    }

    /// Review 12, diff review 6: a pooled connection that closed after it was taken and before the request was
    /// written took the write silently, and the call waited for its deadline.
    @Test("a request on a connection already closed fails at once as never sent, without writing")
    func sendOnClosedConnection() throws {
        let channel = EmbeddedChannel()
        let handler = HTTPBackendClientHandler()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.close().wait()
        let promise = channel.eventLoop.makePromise(of: HTTPBackendResponse.self)
        handler.start(promise: promise, maxResponseBytes: 1 << 20)
        handler.send(head: ByteBuffer(string: "POST /run HTTP/1.1\r\n\r\n"), body: StreamedJSONBody(ByteBuffer()))
        let outcome = Result { try promise.futureResult.wait() }
        guard case .failure(HTTPBackendClientHandler.Failure.closedBeforeSend) = outcome else {
            Issue.record("not failed as never sent: \(outcome)")
            return
        }
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "nothing written")
    }

    /// Review 17, finding 1: a close-delimited answer (no Content-Length, not chunked) that this side closed, at the
    /// caller's deadline or when its client went away, was finished as if the runner had closed: its empty or
    /// partial body was read as the runner's result, a protocol failure counted against the endpoint (and three
    /// ejected it). Only the runner's close ends such a body.
    @Test(
        "a close-delimited answer ends when the runner closes, and is cut (not finished) when this side closes",
        arguments: [false, true])
    func closeDelimitedEnd(closedHere: Bool) throws {
        let channel = EmbeddedChannel()
        let handler = HTTPBackendClientHandler()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        let promise = channel.eventLoop.makePromise(of: HTTPBackendResponse.self)
        handler.start(promise: promise, maxResponseBytes: 1 << 20)
        #expect(
            handler.send(head: ByteBuffer(string: "POST /run HTTP/1.1\r\n\r\n"), body: StreamedJSONBody(ByteBuffer())))
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"out"))
        if closedHere {
            try channel.close().wait()
        } else {
            channel.pipeline.fireChannelInactive()
        }
        let outcome = Result { try promise.futureResult.wait() }
        switch (closedHere, outcome) {
        case (true, .failure(HTTPBackendClientHandler.Failure.closedBeforeResponse)):
            break
        case (false, .success(let response)):
            #expect(response.body == ByteBuffer(string: "{\"out"))
        default:
            Issue.record("closed here: \(closedHere), outcome: \(outcome)")
        }
        _ = try? channel.finish()
    }

    @Test("the streaming reader gathers a non-SSE answer linearly too")
    func sseReaderWholeAnswer() throws {
        let reader = HTTPBackendSSEReader(maxResponseBytes: 32 << 20, maxEventBytes: 1 << 20)
        var decoder = HTTP1ResponseDecoder()
        for part in try Self.parts(Self.head(contentLength: nil), decoder: &decoder) { try reader.receive(part) }
        var moves = 0
        var last: UInt?
        for i in 0..<Self.chunks {
            try reader.receive(.body(Self.chunk(i)))
            let address = reader.gatheredStorageAddress
            if address != last { moves += 1 }
            last = address
        }
        #expect(moves >= 1 && moves <= 20, "answer storage moved \(moves) times")
        try reader.receive(.end)
        let promise = EmbeddedEventLoop().makePromise(of: HTTPBackendStreamItem?.self)
        #expect(!reader.pull(promise))
        guard case .response(let response)? = try promise.futureResult.wait() else {
            Issue.record("expected the whole response")
            return
        }
        #expect(response.body.readableBytes == Self.chunk * Self.chunks)
    }

    static func blobRequest(_ count: Int) -> TriggerRequest {
        TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: "blob-info"),
            inputs: [
                TriggerInput(variables: [
                    "f": .blob(Blob(bytes: periodicBytes(count: count) { UInt8(truncatingIfNeeded: $0 &* 31) }))
                ])
            ],
            requestID: "r"
        )
    }

    static func requestHead(_ body: StreamedJSONBody) -> ByteBuffer {
        var writer = HTTP1RequestHeadWriter(method: "POST", target: "/run")
        writer.add("content-length", decimal: body.count)
        return writer.finish()
    }

    @Test("the request body waits while the channel is not writable, then goes out in ≤ 256 KiB chunks")
    func requestChunks() throws {
        let channel = EmbeddedChannel()
        let handler = HTTPBackendClientHandler()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()  // an open connection, as pooled
        let request = Self.blobRequest(3 << 20)
        let body = BackendHTTPBody.streamed(request: request)
        channel.isWritable = false
        handler.start(promise: channel.eventLoop.makePromise(), maxResponseBytes: 1 << 20)
        handler.send(head: Self.requestHead(body), body: body)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == Self.requestHead(body))
        // Not writable: nothing of the body went out.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        var sent = ByteBuffer()
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        var chunks = 0
        while let chunk = try channel.readOutbound(as: ByteBuffer.self) {
            #expect(chunk.readableBytes <= HTTPBackendClientHandler.chunkBytes)
            sent.writeImmutableBuffer(chunk)
            chunks += 1
        }
        #expect(chunks >= (4 << 20) / HTTPBackendClientHandler.chunkBytes)
        var whole = ByteBuffer()
        BackendHTTPBody.encode(request: request, into: &whole)
        #expect(sent == whole)
        _ = try? channel.finish()
    }

    @Test("an answer that comes before the whole request body was sent: the connection is not reused")
    func earlyAnswer() throws {
        let channel = EmbeddedChannel()
        let handler = HTTPBackendClientHandler()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()  // an open connection, as pooled
        let body = BackendHTTPBody.streamed(request: Self.blobRequest(1 << 20))
        channel.isWritable = false
        let promise = channel.eventLoop.makePromise(of: HTTPBackendResponse.self)
        handler.start(promise: promise, maxResponseBytes: 1 << 20)
        handler.send(head: Self.requestHead(body), body: body)
        try channel.writeInbound(Self.head(contentLength: 0))
        let response = try promise.futureResult.wait()
        #expect(response.status == 200)
        #expect(!response.keepAlive)
        // Nothing more of the body follows once the channel is writable again.
        while try channel.readOutbound(as: ByteBuffer.self) != nil {}
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }
}
