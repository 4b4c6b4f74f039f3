import SeededRandom
import Testing
import WireCodecs

/// `HTTP1CommonFields`: a literal only for the very text it stands for (a name folded to lowercase, a value byte for
/// byte), and nil for everything else, so that `lowercasedFields` hands out the same strings as without it.
@Suite("HTTP/1.1 common field literals")
struct HTTP1CommonFieldsTests {
    /// Every name the table holds, as the REST frontend matches them (lowercase).
    static let names = [
        "host", "accept", "cookie", "expect", "user-agent", "request-id", "connection", "keep-alive", "traceparent",
        "content-type", "authorization", "cache-control", "content-length", "accept-encoding", "accept-language",
        "idempotency-key", "x-forwarded-for", "transfer-encoding", "x-forwarded-proto",
    ]
    /// Every value the table holds.
    static let values = [
        "*/*", "gzip", "close", "chunked", "keep-alive", "100-continue", "application/json", "gzip, deflate, br",
        "application/octet-stream", "application/json; charset=utf-8",
    ]
    /// `tchar` (RFC 9110 §5.6.2), the bytes a field name is made of.
    static let tokenBytes = Array("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    static func name(_ text: [UInt8]) -> String? { text.withUnsafeBytes { HTTP1CommonFields.name($0) } }
    static func value(_ text: [UInt8]) -> String? { text.withUnsafeBytes { HTTP1CommonFields.value($0) } }
    static func lowercased(_ text: [UInt8]) -> String {
        String(decoding: text.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    @Test("each name is found in lowercase, in capitals and in every mixed case, as its lowercase text")
    func namesInAnyCase() {
        var random = SplitMix64(seed: 11)
        for name in Self.names {
            #expect(Self.name(Array(name.utf8)) == name)
            #expect(Self.name(Array(name.uppercased().utf8)) == name)
            for _ in 0..<20 {
                // Each letter in capitals or not, at random (a lowercase letter's capital is 0x20 below it).
                let mixed = name.utf8.map { $0 >= 0x61 && $0 <= 0x7A && Bool.random(using: &random) ? $0 - 0x20 : $0 }
                #expect(Self.name(mixed) == name, "\(String(decoding: mixed, as: UTF8.self))")
            }
        }
    }

    @Test("a name one byte off any listed one, of the same length, is not found")
    func namesOneByteOff() {
        for name in Self.names {
            let bytes = Array(name.utf8)
            for index in bytes.indices {
                for replacement in Self.tokenBytes where replacement | 0x20 != bytes[index] {
                    var changed = bytes
                    changed[index] = replacement
                    #expect(Self.name(changed) == nil, "\(String(decoding: changed, as: UTF8.self))")
                }
            }
        }
    }

    @Test("random tokens of the listed lengths: found only as their own lowercase text")
    func randomTokens() {
        var random = SplitMix64(seed: 1111)
        let lengths = Set(Self.names.map(\.utf8.count)).sorted() + [1, 3, 16, 40]
        for _ in 0..<20_000 {
            let length = lengths.randomElement(using: &random)!
            let token = (0..<length).map { _ in Self.tokenBytes.randomElement(using: &random)! }
            if let found = Self.name(token) {
                #expect(found == Self.lowercased(token))
                #expect(Self.names.contains(found))
            }
        }
    }

    @Test("each value is found exactly as listed; in another case or one byte off it is not")
    func valuesExactly() {
        for value in Self.values {
            let bytes = Array(value.utf8)
            #expect(Self.value(bytes) == value)
            if value.uppercased() != value { #expect(Self.value(Array(value.uppercased().utf8)) == nil) }
            for index in bytes.indices {
                for replacement: UInt8 in [0x20, 0x41, 0x61, bytes[index] ^ 0x20, bytes[index] ^ 0x01]
                where replacement != bytes[index] {
                    var changed = bytes
                    changed[index] = replacement
                    #expect(Self.value(changed) == nil, "\(String(decoding: changed, as: UTF8.self))")
                }
            }
        }
        #expect(Self.value([]) == nil)
        #expect(Self.value(Array("application/json ".utf8)) == nil)
    }
}

extension HTTP1CommonFieldsTests {
    static func method(_ text: String) -> String? { Array(text.utf8).withUnsafeBytes { HTTP1CommonFields.method($0) } }

    @Test("methods: each listed one as its own text, case-sensitively; any other (or one byte off) is not found")
    func methods() {
        let methods = ["GET", "PUT", "POST", "HEAD", "PATCH", "DELETE", "OPTIONS"]
        for method in methods {
            #expect(Self.method(method) == method)
            #expect(Self.method(method.lowercased()) == nil)
            let bytes = Array(method.utf8)
            for index in bytes.indices {
                for replacement in Self.tokenBytes where replacement != bytes[index] {
                    var changed = bytes
                    changed[index] = replacement
                    let text = String(decoding: changed, as: UTF8.self)
                    #expect(Self.method(text) == (methods.contains(text) ? text : nil), "\(text)")
                }
            }
        }
        for other in ["", "GE", "CONNECT", "TRACE", "PROPFIND", "POSTS"] { #expect(Self.method(other) == nil) }
    }
}
