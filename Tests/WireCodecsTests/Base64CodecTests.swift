import NIOCore
import Testing
import WireCodecs

@Suite("Base64Codec")
struct Base64CodecTests {
    private func encode(_ bytes: [UInt8]) -> String {
        var out = ByteBuffer()
        bytes.withUnsafeBytes { Base64Codec.encode($0, into: &out) }
        return out.text
    }

    private func decode(_ text: String) throws -> [UInt8] {
        var out = ByteBuffer()
        try Array(text.utf8).withUnsafeBytes { try Base64Codec.decode($0, into: &out) }
        return Array(out.readableBytesView)
    }

    @Test(
        "RFC 4648 test vectors encode and decode",
        arguments: [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ]
    )
    func vectors(plain: String, encoded: String) throws {
        #expect(encode(Array(plain.utf8)) == encoded)
        #expect(try decode(encoded) == Array(plain.utf8))
    }

    @Test("Unpadded and URL-safe input decodes")
    func lenientForms() throws {
        #expect(try decode("Zg") == Array("f".utf8))
        #expect(try decode("Zm8") == Array("fo".utf8))
        #expect(try decode("-_-_") == (try decode("+/+/")))
    }

    @Test("Every length and byte value round-trips")
    func roundTrip() throws {
        for length in 0..<300 {
            let bytes = pseudoRandomBytes(length, seed: UInt64(length + 1))
            #expect(try decode(encode(bytes)) == bytes, "length \(length)")
        }
        let all = (0...255).map { UInt8($0) }
        #expect(try decode(encode(all)) == all)
    }

    @Test(
        "Invalid input reports the offending offset",
        arguments: [
            ("Zm9v!mFy", 4), ("Zm 9v", 2), ("Zm9vY", 4), ("Zg=a", 2), ("Z===", 1),
        ]
    )
    func invalid(text: String, offset: Int) {
        #expect(throws: Base64Codec.Failure.self) { try decode(text) }
        do {
            _ = try decode(text)
        } catch let failure as Base64Codec.Failure {
            #expect(failure.offset == offset, "\(failure)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
