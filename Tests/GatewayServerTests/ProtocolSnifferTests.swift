@testable import GatewayServer
import NIOCore
import NIOEmbedded
import Testing

/// The first-byte rule of a TLS port (issue 17): 0x16 is TLS, anything else is cleartext, refused or served.
@Suite("ProtocolSniffer with TLS on the port")
struct ProtocolSnifferTests {
    /// What the sniffer decides for `bytes` (fed one read) under `mode`, and the bytes replayed after it.
    static func decide(_ bytes: [UInt8], mode: ProtocolSniffer.TLSMode) throws -> ProtocolSniffer.WireProtocol? {
        let channel = EmbeddedChannel()
        var decided: ProtocolSniffer.WireProtocol?
        try channel.pipeline.syncOperations.addHandler(ProtocolSniffer(tls: mode) { _, proto in decided = proto })
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        // Everything read while deciding is handed on unchanged, for TLS as for cleartext.
        if decided != nil {
            let replayed = try channel.readInbound(as: ByteBuffer.self)
            #expect(replayed == ByteBuffer(bytes: bytes))
        }
        _ = try channel.finish(acceptAlreadyClosed: true)
        return decided
    }

    static let clientHello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]

    @Test("TLS required: a handshake record is TLS, an HTTP/1.1 request and the h2 preface are refused")
    func required() throws {
        #expect(try Self.decide(Self.clientHello, mode: .required) == .tls)
        #expect(try Self.decide(Array("GET / HTTP/1.1\r\n".utf8), mode: .required) == .plaintextRefused(http2: false))
        // `P` as in the preface, then not: HTTP/1.1 (review 10, finding 4: the protocol picks the refusal's form).
        #expect(try Self.decide(Array("POST / HTTP/1.1\r\n".utf8), mode: .required) == .plaintextRefused(http2: false))
        #expect(try Self.decide(ProtocolSniffer.preface, mode: .required) == .plaintextRefused(http2: true))
        // A preface split over reads is recognised before the refusal is decided.
        #expect(try Self.decide(Array(ProtocolSniffer.preface.prefix(10)), mode: .required) == nil)
    }

    @Test("TLS optional: TLS, HTTP/1.1 and h2 prior knowledge on one port")
    func optional() throws {
        #expect(try Self.decide(Self.clientHello, mode: .optional) == .tls)
        #expect(try Self.decide(Array("POST /x HTTP/1.1\r\n".utf8), mode: .optional) == .http1)
        #expect(try Self.decide(ProtocolSniffer.preface, mode: .optional) == .http2)
    }

    @Test("no TLS: a handshake record is not HTTP/2, so it goes to HTTP/1.1 (which answers 400)")
    func off() throws {
        #expect(try Self.decide(Self.clientHello, mode: .off) == .http1)
        #expect(try Self.decide(ProtocolSniffer.preface, mode: .off) == .http2)
    }
}
