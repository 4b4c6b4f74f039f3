import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("application/x-www-form-urlencoded and multipart parts")
struct FormAndPartsTests {
    @Test("pairs in order: + is a space, %XX a byte, a name without = has an empty value, empty segments skipped")
    func formPairs() throws {
        let pairs = try FormURLEncoded.decode(ByteBuffer(string: "json_inputs=%7B%22a%22%3A+1%7D&&flag&x=%C3%A9+%2B"))
        #expect(pairs.map(\.name) == ["json_inputs", "flag", "x"])
        #expect(pairs.map(\.value) == [#"{"a": 1}"#, "", "é +"])
        #expect(try FormURLEncoded.decode(ByteBuffer()).isEmpty)
    }

    @Test("a malformed escape and bytes that are not UTF-8 are refused")
    func formErrors() {
        #expect(throws: GatewayError.self) { try FormURLEncoded.decode(ByteBuffer(string: "a=%7")) }
        #expect(throws: GatewayError.self) { try FormURLEncoded.decode(ByteBuffer(string: "a=%zz")) }
        #expect(throws: GatewayError.self) { try FormURLEncoded.decode(ByteBuffer(string: "a=%FF")) }
    }

    @Test("parts mode: every part as sent, fed one byte at a time, with file names and content types")
    func parts() throws {
        let body = """
            --b\r
            Content-Disposition: form-data; name="json_inputs"\r
            \r
            {"prompt": "hi"}\r
            --b\r
            Content-Disposition: form-data; name="doc"; filename="doc.pdf"\r
            Content-Type: application/pdf\r
            \r
            %PDF\r\n--not-the-boundary\r
            --b--\r

            """
        var decoder = try MultipartFormDecoder(boundary: "b", limits: .defaults, collectingParts: true)
        for byte in body.utf8 { try decoder.feed(ByteBuffer(bytes: [byte])) }
        let parts = try decoder.finishParts()
        #expect(parts.map(\.name) == ["json_inputs", "doc"])
        #expect(String(buffer: parts[0].body) == #"{"prompt": "hi"}"#)
        #expect(parts[0].isFile == false)
        #expect(parts[1].fileName == "doc.pdf")
        #expect(parts[1].contentType == "application/pdf")
        #expect(String(buffer: parts[1].body) == "%PDF\r\n--not-the-boundary")
        #expect(parts[1].isFile)
    }

    @Test("parts mode: a body without its closing boundary is refused; the part cap still applies")
    func partsErrors() throws {
        var decoder = try MultipartFormDecoder(boundary: "b", limits: .defaults, collectingParts: true)
        try decoder.feed(ByteBuffer(string: "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx"))
        #expect(throws: GatewayError.self) { try decoder.finishParts() }

        var limits = CodecLimits.defaults
        limits.maxMultipartParts = 1
        var capped = try MultipartFormDecoder(boundary: "b", limits: limits, collectingParts: true)
        #expect(throws: GatewayError.self) {
            try capped.feed(
                ByteBuffer(
                    string:
                        "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\ny\r\n--b--"
                ))
        }
    }
}
