import NIOCore
import Testing
import TriggerModel
import TestScheduling

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

@Suite("Data URIs")
struct DataURITests {
    private func blob(_ contentType: String, _ fileName: String?, _ bytes: [UInt8] = Array("hi".utf8)) -> Blob {
        Blob(contentType: contentType, fileName: fileName, bytes: ByteBuffer(bytes: bytes))
    }

    private func header(_ blob: Blob) -> String { String(decoding: DataURI.header(for: blob), as: UTF8.self) }

    // MARK: Decoding

    @Test(
        "RFC 4648 test vectors decode from the payload",
        arguments: [
            ("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"), ("Zm9vYg", "foob"), ("Zm9vYmE", "fooba"), ("-_-_", "URL-safe"),
        ]
    )
    func decodesVectors(encoded: String, plain: String) throws {
        let blob = try #require(try DataURI.decode("data:text/plain;base64,\(encoded)"))
        let expected: [UInt8] = encoded == "-_-_" ? [0xFB, 0xFF, 0xBF] : Array(plain.utf8)
        #expect(Array(blob.bytes.readableBytesView) == expected)
        #expect(blob.contentType == "text/plain")
        #expect(blob.fileName == nil)
    }

    @Test(
        "A base64 data URI with a bad payload throws with the offset in the payload",
        arguments: [("Zm9v!", 4), ("Z", 0), ("Zm9v\n", 4), ("Zg===", 2), ("Z===", 1), ("iVBO!!==", 4)]
    )
    func rejectsInvalid(payload: String, offset: Int) {
        let failure = #expect(throws: Base64.Failure.self) { try DataURI.decode("data:;base64,\(payload)") }
        #expect(failure?.offset == offset)
        if let failure {
            #expect(DataURI.message(for: failure).hasPrefix("invalid base64 in data URI at payload offset \(offset): "))
        }
    }

    @Test(
        "Headers: file name spellings, content-type parameters in order, escapes, any case",
        arguments: [
            ("DATA:application/pdf;fileName=r%C3%A9sum%C3%A9.pdf;BASE64,AA==", "application/pdf", "résumé.pdf"),
            ("data:;name=x;base64,AA==", "text/plain;charset=US-ASCII", "x"),
            ("data:;File-Name=y;base64,AA==", "text/plain;charset=US-ASCII", "y"),
            ("data:;charset=utf-8;name=z;base64,AA==", "text/plain;charset=utf-8", "z"),
            ("data:text/plain;charset=utf-8;base64,AA==", "text/plain;charset=utf-8", nil),
            ("data:text/plain;filename=a.txt;charset=utf-8;base64,AA==", "text/plain;charset=utf-8", "a.txt"),
            ("data:text/plain;filename=a;filename=b;base64,AA==", "text/plain", "b"),
            ("data:image%2Fpng;q=%22x%20y%22;base64,AA==", "image/png;q=\"x y\"", nil),
            ("data:text/plain;x=50%;y=%zz;base64,AA==", "text/plain;x=50%;y=%zz", nil),
            ("data:x/y;filename=;base64,AA==", "x/y", ""),
            ("data:;a=b;;base64,AA==", "text/plain;a=b;", nil),
            ("data:text/plain;base64;base64,AA==", "text/plain;base64", nil),
            ("data:a/b;filename=%FF;base64,AA==", "a/b", "\u{FFFD}"),
        ] as [(String, String, String?)]
    )
    func headers(uri: String, contentType: String, fileName: String?) throws {
        let blob = try #require(try DataURI.decode(uri))
        #expect(blob.contentType == contentType)
        #expect(blob.fileName == fileName)
        #expect(Array(blob.bytes.readableBytesView) == [0])
    }

    @Test(
        "A base64 data URI whose media type is not type/subtype is an error, not a string (RFC 2397, RFC 9110 §8.3.1)",
        arguments: [
            "data:???;base64,AAAA", "data:x;base64,AA==", "data:image/;base64,AA==", "data:/png;base64,AA==",
            "data:a/b/c;base64,AA==", "data:image%2F;base64,AA==", "data:a%20b/c;base64,AA==", "data:(a)/b;base64,AA==",
        ])
    func rejectsBadMediaType(uri: String) {
        let failure = #expect(throws: Base64.Failure.self) { try DataURI.decode(uri) }
        if let failure {
            #expect(DataURI.message(for: failure).hasPrefix("invalid data URI: media type \""), "\(failure)")
            #expect(DataURI.message(for: failure).hasSuffix("is not type/subtype (RFC 2397, RFC 9110 §8.3.1)"))
        }
    }

    @Test(
        "Strings that are not base64 data URIs stay strings",
        arguments: [
            "", "data", "data:", "database: postgres", "data:;base64", "data:text/plain,hello",
            "data:text/plain;charset=utf-8,hi", "data:image/png;base64 ,AA==", "data:text/plain; charset=x;base64,AA",
            "data:text/plain;base64x,AA", "data:text/plain;base64;,AA", "data:tëxt/plain;base64,AA",
            "dat:;base64,AA", " data:;base64,AA", "data:\t;base64,AA",
        ]
    )
    func notDataURIs(text: String) throws {
        #expect(try DataURI.decode(text) == nil)
    }

    // MARK: Encoding and round trips

    @Test("Encoding percent-encodes what decoding would misread, and nothing else")
    func exactEncoding() {
        #expect(header(blob("image/png", nil)) == "data:image/png;base64,")
        #expect(
            header(blob("text/plain; charset=\"utf-8\"", "we;ird, name%.bin"))
                == "data:text/plain;%20charset=%22utf-8%22;filename=we%3Bird%2C%20name%25.bin;base64,"
        )
        #expect(
            header(blob("a/b;name=x;Filename=y;other=z", ""))
                == "data:a/b;name%3Dx;Filename%3Dy;other=z;filename=;base64,")
        #expect(header(blob("a/b", "résumé.pdf")) == "data:a/b;filename=r%C3%A9sum%C3%A9.pdf;base64,")
        #expect(
            DataURI.encode(blob("image/png", "x.png", [0x89, 0x50, 0x4E, 0x47]))
                == "data:image/png;filename=x.png;base64,iVBORw==")
    }

    static let contentTypes = [
        "image/png", "application/octet-stream", "text/plain; charset=utf-8",
        "text/plain;charset=\"utf-8\"; format=flowed", "application/octet-stream;name=x.bin", "multipart/x;FILENAME=y",
        // Not ";a=b": a data URI without a media type reads as text/plain (RFC 2397 §2; see `headers`).
        "text/plain;base64", "text/plain;", "weird type, with ünïcode % and \\ \" \u{0}", "x",
    ]
    /// What encoding writes for `contentType`, spelled out here: an empty media type or a `type/subtype` one as
    /// it is, any other as application/octet-stream with the same parameters.
    static func encodable(_ contentType: String) -> String {
        let semicolon = contentType.firstIndex(of: ";") ?? contentType.endIndex
        let mediaType = contentType[..<semicolon]
        let parts = mediaType.split(separator: "/", omittingEmptySubsequences: false)
        let tchars = Set("!#$%&'*+-.^_`|~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        if mediaType.isEmpty || (parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(tchars.contains) })
        {
            return contentType
        }
        return "application/octet-stream" + contentType[semicolon...]
    }

    static let fileNames: [String?] = [
        nil, "", "résumé 📄.pdf", "a;b,c%d=e", "%41", "name=x", "../../etc/passwd", "tab\there\r\n",
    ]

    @Test(
        "decode(encode(blob)) == blob for content types with parameters and odd file names",
        arguments: contentTypes, fileNames)
    func roundTrip(contentType: String, fileName: String?) throws {
        for count in [0, 1, 2, 3, 64, 1000] {
            let original = blob(contentType, fileName, XorShift(seed: UInt64(count + 1)).bytesOnce(count))
            let uri = DataURI.encode(original)
            // A media type that is not type/subtype is written as application/octet-stream (params kept).
            let expected = Blob(contentType: Self.encodable(contentType), fileName: fileName, bytes: original.bytes)
            #expect(try DataURI.decode(uri) == expected, "\(uri.prefix(200))")
            // The ByteBuffer writer produces the same text.
            var buffer = ByteBuffer()
            DataURI.encode(original, into: &buffer)
            #expect(buffer.text == uri)
        }
    }

    @Test("Random blobs round-trip; every header fits the cap", .cpuBound)
    func randomRoundTrips() throws {
        let pieces = ["a", "/", ";", "=", ",", "%", " ", "\"", "é", "😀", "name", "filename", "base64", "%2", "\u{7F}"]
        var random = XorShift(seed: 7)
        for _ in 0..<2000 {
            func text(_ maxPieces: Int) -> String {
                (0..<random.next(below: maxPieces)).map { _ in pieces[random.next(below: pieces.count)] }.joined()
            }
            let contentType = text(40)
            let fileName: String? = random.next(below: 4) == 0 ? nil : text(40)
            let original = blob(contentType, fileName, random.bytes(random.next(below: 10)))
            let header = DataURI.header(for: original)
            #expect(header.count <= DataURI.maxHeaderBytes)
            let decoded = try #require(try DataURI.decode(DataURI.encode(original)))
            if header.count < DataURI.maxHeaderBytes / 2 {
                // Parameters without a media type (";…") decode as text/plain's (RFC 2397 §2).
                var expected = Blob(
                    contentType: Self.encodable(original.contentType), fileName: fileName, bytes: original.bytes)
                if original.contentType.hasPrefix(";") {
                    expected = Blob(
                        contentType: "text/plain" + original.contentType, fileName: fileName, bytes: original.bytes)
                }
                #expect(decoded == expected)
            }
            // Whatever decoded re-encodes whole.
            #expect(try DataURI.decode(DataURI.encode(decoded)) == decoded)
        }
    }

    // MARK: The header cap

    /// `data:application/pdf;filename=` + k × `a` + `;base64,`: 38 + k bytes.
    @Test(
        "A header at the cap decodes and encodes whole; one byte over does not",
        arguments: [DataURI.maxHeaderBytes, DataURI.maxHeaderBytes + 1])
    func headerCap(length: Int) throws {
        let name = String(repeating: "a", count: length - 38)
        let uri = "data:application/pdf;filename=\(name);base64,AA=="
        let original = blob("application/pdf", name, [0])
        let encoded = DataURI.header(for: original)
        if length <= DataURI.maxHeaderBytes {
            #expect(try DataURI.decode(uri) == original)
            #expect(encoded.count == length)
        } else {
            #expect(try DataURI.decode(uri) == nil)
            // Encoding shortens the file name to fit exactly, and the result decodes.
            #expect(encoded.count == DataURI.maxHeaderBytes)
            let decoded = try #require(try DataURI.decode(DataURI.encode(original)))
            #expect(decoded.fileName == String(name.dropLast()))
            #expect(decoded.bytes == original.bytes)
        }
    }

    @Test("An overlong file name is shortened at a scalar boundary and keeps its extension")
    func longFileName() throws {
        let ascii = blob("image/png", String(repeating: "x", count: 2000) + ".png")
        let a = try #require(try DataURI.decode(DataURI.encode(ascii)))
        #expect(DataURI.header(for: ascii).count == DataURI.maxHeaderBytes)
        #expect(a.fileName?.hasSuffix("xx.png") == true)
        #expect(a.contentType == "image/png")

        let unicode = blob("image/png", String(repeating: "é", count: 400))
        let u = try #require(try DataURI.decode(DataURI.encode(unicode)))
        #expect(DataURI.header(for: unicode).count <= DataURI.maxHeaderBytes)
        // Each `é` is `%C3%A9`: whole characters only.
        let room = DataURI.maxHeaderBytes - "data:image/png;filename=;base64,".utf8.count
        #expect(u.fileName == String(repeating: "é", count: room / 6))
    }

    @Test("An overlong content type loses its parameters, then falls back to the default type")
    func longContentType() throws {
        let params = blob("text/plain;p=" + String(repeating: "v", count: 1100), "a.txt")
        let p = try #require(try DataURI.decode(DataURI.encode(params)))
        #expect(p.contentType == "text/plain")
        #expect(p.fileName == "a.txt")
        let huge = blob("x/" + String(repeating: "y", count: 1100), nil)
        #expect(try DataURI.decode(DataURI.encode(huge))?.contentType == Blob.defaultContentType)
    }

    @Test("A header within the cap whose canonical form is not is not a data URI")
    func canonicalFormOverCap() throws {
        // Each lone `%` is kept literally and re-encodes as `%25`.
        let fits = "data:;filename=" + String(repeating: "%", count: 300) + ";base64,AA=="
        let blob = try #require(try DataURI.decode(fits))
        #expect(blob.fileName == String(repeating: "%", count: 300))
        #expect(try DataURI.decode(DataURI.encode(blob)) == blob)
        let grows = "data:;filename=" + String(repeating: "%", count: 400) + ";base64,AA=="
        #expect(try DataURI.decode(grows) == nil)
    }

    @Test(
        "The fuzzer's data-URI crashers now round-trip",
        arguments: [
            "datauri-long-filename-reencodes-past-header-limit", "datauri-roundtrip-fuzzer-found.min",
        ])
    func fuzzFailCases(name: String) throws {
        let url = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/fuzz/FailCases/\(name)")
        let bytes = try Data(contentsOf: url)
        // The fuzzer hands strings over as repaired UTF-8, as here.
        let text = String(decoding: bytes, as: UTF8.self)
        let blob = try #require(try DataURI.decode(text))
        #expect(try DataURI.decode(DataURI.encode(blob)) == blob)
    }
}

extension XorShift {
    fileprivate func bytesOnce(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}
