import NIOCore
import ProtoCodec
import Testing
import TriggerModel

@Suite("Data URIs")
struct DataURITests {
    @Test(
        "RFC 4648 test vectors decode",
        arguments: [
            ("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"), ("Zm9vYg", "foob"), ("Zm9vYmE", "fooba"),
        ]
    )
    func decodesVectors(encoded: String, plain: String) throws {
        let blob = try #require(try DataURI.decode("data:text/plain;base64,\(encoded)"))
        #expect(String(buffer: blob.bytes) == plain)
        #expect(blob.contentType == "text/plain")
        #expect(blob.fileName == nil)
    }

    @Test("invalid payloads are rejected", arguments: ["Zg=", "Z", "Zm9v!", "Zm9v\n", "Zg===", "Z===", "Zm=v"])
    func rejectsInvalid(payload: String) {
        #expect(throws: GatewayError.self) { try DataURI.decode("data:;base64,\(payload)") }
    }

    @Test("parameters: file name spellings, empty type, case-insensitive scheme and base64 marker")
    func parameters() throws {
        let a = try #require(try DataURI.decode("DATA:application/pdf;fileName=r%C3%A9sum%C3%A9.pdf;BASE64,AA=="))
        #expect(a.contentType == "application/pdf")
        #expect(a.fileName == "résumé.pdf")
        let b = try #require(try DataURI.decode("data:;name=x;base64,AA=="))
        #expect(b.contentType == Blob.defaultContentType)
        #expect(b.fileName == "x")
        #expect(try DataURI.decode("data:text/plain;charset=utf-8,hi") == nil)
        #expect(try DataURI.decode("data:image/png;base64 ,AA==") == nil)
    }

    @Test("encoding round-trips every byte value and length mod 3", arguments: [0, 1, 2, 3, 255, 256, 257])
    func roundTrip(count: Int) throws {
        let bytes = ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
        let blob = Blob(contentType: "application/octet-stream", fileName: "we;ird, name%.bin", bytes: bytes)
        let uri = DataURI.encode(blob)
        #expect(uri.hasPrefix("data:application/octet-stream;filename=we%3Bird%2C%20name%25.bin;base64,"))
        #expect(try DataURI.decode(uri) == blob)
    }
}
