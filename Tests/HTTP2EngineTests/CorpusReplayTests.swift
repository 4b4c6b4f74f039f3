import Foundation
import HTTP2Engine
import NIOCore
import NIOEmbedded
import Testing

/// The fuzz corpus's HTTP/2 inputs (every file of scripts/fuzz/corpus that opens with the client preface: captures
/// of nghttp, generated sessions, and what libFuzzer found from them) served by the engine alone, each answered as
/// a gRPC echo server answers. This suite also runs under AddressSanitizer (`scripts/sanitize.sh address --core`),
/// which puts every C callback and pointer the engine hands libnghttp2 under ASan on those inputs in each test run;
/// `scripts/fuzz.sh regress` (libFuzzer's build of the whole gateway) replays them through the frontends as well.
@Suite("HTTP/2 engine: the fuzz corpus's HTTP/2 sessions")
struct CorpusReplayTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// scripts/fuzz/corpus, found upwards from this file (the sanitizer package reaches it through a link).
    static let corpus: URL? = {
        var directory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent("scripts/fuzz/corpus")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }()

    static let inputs: [String] = {
        guard let corpus else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []
        return names.filter { name in
            guard let handle = FileHandle(forReadingAtPath: corpus.appendingPathComponent(name).path) else {
                return false
            }
            defer { try? handle.close() }
            return (try? handle.read(upToCount: preface.count)).map { Array($0) == preface } ?? false
        }.sorted()
    }()

    @Test("the corpus holds HTTP/2 sessions, nghttp's captures among them")
    func present() {
        #expect(Self.inputs.count >= 30, "\(Self.inputs.count)")
        #expect(Self.inputs.contains { $0.hasPrefix("nghttp-") })
    }

    /// Uneven reads, as a socket gives them (the same sizes as the fuzz harness's).
    static let chunkSizes = [1, 9, 64, 3, 1024, 17, 4096]

    @Test("a session is served to its end: the server's preface first, every callback in bounds", arguments: inputs)
    func replayed(_ name: String) throws {
        let bytes = try [UInt8](Data(contentsOf: try #require(Self.corpus).appendingPathComponent(name)))
        let channel = EmbeddedChannel()
        let delegate = RecordingDelegate()
        defer {
            delegate.onHeaders = nil
            delegate.onData = nil
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
        // A gRPC echo server's answer at each request's end, from inside the callbacks.
        let respond = { [weak delegate] (session: NGHTTP2Session, stream: HTTP2StreamID) in
            guard let delegate else { return }
            session.sendResponseHeaders(
                stream: stream, headers: [":status": "200", "content-type": "application/grpc"], endStream: false)
            session.sendData(stream: stream, ByteBuffer(string: delegate.body(stream.rawValue)), endStream: false)
            session.sendTrailers(stream: stream, ["grpc-status": "0"])
        }
        delegate.onHeaders = { session, stream, _, endStream in if endStream { respond(session, stream) } }
        delegate.onData = { session, stream, _, endStream in if endStream { respond(session, stream) } }
        _ = try channel.pipeline.syncOperations.configureHTTP2Session(role: .server, delegate: delegate)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()

        var output: [UInt8] = []
        func drain() throws {
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { output += buffer.readableBytesView }
        }
        var offset = 0
        var chunk = 0
        while offset < bytes.count, channel.isActive {
            let size = min(Self.chunkSizes[chunk % Self.chunkSizes.count], bytes.count - offset)
            // An inbound error is the engine refusing the input (a GOAWAY, then a close): allowed.
            do { try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<(offset + size)])) } catch { break }
            offset += size
            chunk += 1
            try drain()
        }
        try drain()
        // RFC 9113 §3.4: the server's connection preface is a SETTINGS frame (type 4, stream 0), sent first.
        #expect(output.count >= 9, "\(name): no answer")
        #expect(output.count >= 9 && output[3] == 4 && output[5..<9].allSatisfy { $0 == 0 }, "\(name)")
    }
}
