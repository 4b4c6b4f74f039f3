import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("MultipartFormDecoder")
struct MultipartFormDecoderTests {
    static let boundary = "----formBoundary7MA4YWxk"

    /// One part: name, optional file name and content type, raw body bytes.
    struct Part {
        var name: String
        var fileName: String? = nil
        var contentType: String? = nil
        var body: [UInt8]
    }

    static func body(_ parts: [Part], preamble: String = "", epilogue: String = "", close: Bool = true) -> [UInt8] {
        var out = Array(preamble.utf8)
        for part in parts {
            out += Array("--\(boundary)\r\n".utf8)
            var disposition = "Content-Disposition: form-data; name=\"\(part.name)\""
            if let fileName = part.fileName { disposition += "; filename=\"\(fileName)\"" }
            out += Array("\(disposition)\r\n".utf8)
            if let type = part.contentType { out += Array("Content-Type: \(type)\r\n".utf8) }
            out += Array("\r\n".utf8) + part.body + Array("\r\n".utf8)
        }
        if close { out += Array("--\(boundary)--\r\n\(epilogue)".utf8) }
        return out
    }

    enum Feeding: String, CaseIterable, CustomTestStringConvertible {
        case whole, byteByByte, sevenByteChunks
        var testDescription: String { rawValue }
    }

    static func decode(
        _ bytes: [UInt8],
        feeding: Feeding = .whole,
        limits: CodecLimits = .defaults,
        boundary: String = boundary
    ) throws -> [TriggerInput] {
        var decoder = try MultipartFormDecoder(boundary: boundary, limits: limits)
        switch feeding {
        case .whole:
            try decoder.feed(ByteBuffer(bytes: bytes))
        case .byteByByte:
            for byte in bytes { try decoder.feed(ByteBuffer(bytes: [byte])) }
        case .sevenByteChunks:
            var i = 0
            while i < bytes.count {
                try decoder.feed(ByteBuffer(bytes: bytes[i..<min(i + 7, bytes.count)]))
                i += 7
            }
        }
        return try decoder.finish()
    }

    /// File data that contains things that look like a delimiter but are not one.
    static let trickyFile: [UInt8] =
        Array("\r\n--\(boundary.dropLast())X\r\n--\r\n-\r\r\n--".utf8) + pseudoRandomBytes(3000)
        + Array("\r\n--\(boundary.prefix(10))".utf8) + [0x0D]

    @Test("Fields, files and arrays decode the same however the body is chunked", arguments: Feeding.allCases)
    func fullBody(feeding: Feeding) throws {
        let bytes = Self.body(
            [
                Part(name: "variables[0].prompt", body: Array("hello world".utf8)),
                Part(name: "variables[0].count", body: Array("42".utf8)),
                Part(name: "variables[0].options", body: Array(#"{"a":[1,"x"]}"#.utf8)),
                Part(name: "variables[0].image", fileName: "cat.png", contentType: "image/png", body: Self.trickyFile),
                Part(name: "variables[0].tags[1]", body: Array("second".utf8)),
                Part(name: "variables[0].tags[0]", body: Array("first".utf8)),
                Part(name: "inputs[1].prompt", body: Array("\"quoted\"".utf8)),
                Part(name: "variables[1].empty", body: []),
            ],
            preamble: "This is the preamble.\r\n",
            epilogue: "epilogue --\(Self.boundary) ignored"
        )
        let inputs = try Self.decode(bytes, feeding: feeding)
        #expect(inputs.count == 2)
        let first = inputs[0].variables
        #expect(first.keys == ["prompt", "count", "options", "image", "tags"])
        #expect(first["prompt"] == .string("hello world"))
        #expect(first["count"] == .number(42))
        #expect(first["options"] == .object(["a": .list([.number(1), .string("x")])]))
        let image = try #require(first["image"]?.blobValue)
        #expect(image.contentType == "image/png")
        #expect(image.fileName == "cat.png")
        #expect(Array(image.bytes.readableBytesView) == Self.trickyFile)
        #expect(first["tags"] == .list([.string("first"), .string("second")]))
        #expect(inputs[1].variables == ["prompt": .string("quoted"), "empty": .string("")])
    }

    @Test("Array positions may come in any order and are ordered by position")
    func arrayOrder() throws {
        let bytes = Self.body([
            Part(name: "variables[0].xs[2]", body: Array("c".utf8)),
            Part(name: "variables[0].xs[0]", body: Array("a".utf8)),
            Part(name: "variables[0].xs[1]", body: Array("b".utf8)),
        ])
        #expect(try Self.decode(bytes)[0].variables["xs"] == .list([.string("a"), .string("b"), .string("c")]))
    }

    @Test("Array positions with a gap are refused, naming the field, as batch-index gaps are")
    func arrayGap() throws {
        let gap = Self.body([
            Part(name: "variables[0].xs[0]", body: Array("a".utf8)),
            Part(name: "variables[0].xs[5]", body: Array("b".utf8)),
        ])
        let error = try #require(throws: GatewayError.self) { try Self.decode(gap) }
        #expect(error.code == .invalidArgument)
        #expect(
            error.message
                == #"multipart field "variables[0].xs[5]" has no variables[0].xs[1]: array indices must start at 0 without gaps"#
        )
        let noZero = Self.body([Part(name: "variables[0].a[5]", body: Array("x".utf8))])
        let alone = try #require(throws: GatewayError.self) { try Self.decode(noZero) }
        #expect(alone.message.contains("has no variables[0].a[0]"), "\(alone.message)")
    }

    @Test("A delimiter at the very start, no preamble, no trailing CRLF after the close")
    func minimalBody() throws {
        let text = "--b\r\nContent-Disposition: form-data; name=\"variables[0].x\"\r\n\r\n1\r\n--b--"
        let inputs = try Self.decode(Array(text.utf8), feeding: .byteByByte, boundary: "b")
        #expect(inputs[0].variables == ["x": .number(1)])
    }

    @Test("Plain-text data URIs become blobs; text/plain fields stay fields; application/json is strict")
    func fieldKinds() throws {
        let bytes = Self.body([
            Part(name: "variables[0].uri", body: Array("data:text/plain;base64,aGk=".utf8)),
            Part(name: "variables[0].text", contentType: "text/plain; charset=utf-8", body: Array("true".utf8)),
            Part(name: "variables[0].bin", contentType: "application/octet-stream", body: [0, 1, 2]),
        ])
        let variables = try Self.decode(bytes)[0].variables
        #expect(variables["uri"]?.blobValue.map { String(buffer: $0.bytes) } == "hi")
        #expect(variables["text"] == .bool(true))
        #expect(variables["bin"]?.blobValue?.fileName == nil)
        #expect(variables["bin"]?.blobValue.map { Array($0.bytes.readableBytesView) } == [0, 1, 2])

        let strict = Self.body([Part(name: "variables[0].j", contentType: "application/json", body: Array("{x".utf8))])
        let error = gatewayError { _ = try Self.decode(strict) }
        #expect(error?.message.contains("(in variables[0].j)") == true)
    }

    @Test(
        "A field's text is read by its charset: UTF-8 (the default) and US-ASCII as sent, ISO-8859-1 transcoded; bytes that are not UTF-8, and other charsets, are an error naming the field (protocol review 58, M1: they became U+FFFD)",
        arguments: Feeding.allCases)
    func fieldCharsets(feeding: Feeding) throws {
        let latin1: [UInt8] = [0x63, 0x61, 0x66, 0xE9, 0x20, 0xFF]  // "café ÿ" in ISO-8859-1
        let read = Self.body([
            Part(name: "variables[0].utf8", body: Array("café ÿ".utf8)),
            Part(name: "variables[0].declared", contentType: "text/plain; charset=UTF-8", body: Array("é".utf8)),
            Part(name: "variables[0].latin1", contentType: "text/plain; charset=ISO-8859-1", body: latin1),
            Part(name: "variables[0].alias", contentType: "text/plain; charset=\"latin1\"", body: [0xE9]),
            // A JSON field in ISO-8859-1: transcoded, then read as JSON.
            Part(
                name: "variables[0].json", contentType: "application/json; charset=iso-8859-1",
                body: [0x22, 0xE9, 0x22]),
            Part(name: "variables[0].ascii", contentType: "text/plain; charset=us-ascii", body: Array("plain".utf8)),
        ])
        let variables = try Self.decode(read, feeding: feeding)[0].variables
        #expect(variables["utf8"] == .string("café ÿ"))
        #expect(variables["declared"] == .string("é"))
        #expect(variables["latin1"] == .string("café ÿ"))
        #expect(variables["alias"] == .string("é"))
        #expect(variables["json"] == .string("é"))
        #expect(variables["ascii"] == .string("plain"))

        for (part, message) in [
            (
                Part(name: "variables[0].a", body: latin1),
                "variables[0].a: the text is not valid UTF-8"
            ),
            (
                Part(name: "variables[0].b", contentType: "text/plain; charset=utf-8", body: [0x22, 0xC3, 0x22]),
                "variables[0].b: the text is not valid UTF-8"
            ),
            // An overlong form and a surrogate (Unicode §3.9, table 3-7).
            (Part(name: "variables[0].c", body: [0xC0, 0xAF]), "variables[0].c: the text is not valid UTF-8"),
            (Part(name: "variables[0].d", body: [0xED, 0xA0, 0x80]), "variables[0].d: the text is not valid UTF-8"),
            (
                Part(name: "variables[0].e", contentType: "text/plain; charset=shift_jis", body: Array("x".utf8)),
                "variables[0].e: charset \"shift_jis\" is not read here"
            ),
        ] {
            let error = gatewayError { _ = try Self.decode(Self.body([part]), feeding: feeding) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "no error")")
        }
        // A file keeps its bytes, whatever they are.
        let file = Self.body([Part(name: "variables[0].f", fileName: "l.txt", contentType: "text/plain", body: latin1)])
        #expect(
            try Self.decode(file, feeding: feeding)[0].variables["f"]?.blobValue.map {
                Array($0.bytes.readableBytesView)
            } == latin1)
    }

    @Test("Bad base64 in a field data URI is an error naming the field")
    func badDataURIField() {
        let bytes = Self.body([Part(name: "variables[0].img", body: Array(#""data:image/png;base64,@@@@""#.utf8))])
        let error = gatewayError { _ = try Self.decode(bytes) }
        #expect(
            error?.message == "variables[0].img: invalid base64 in data URI at payload offset 0: invalid character '@'"
        )
    }

    @Test("Batch index is accepted at the limit and rejected one past it", arguments: [31, 32])
    func batchIndexLimit(index: Int) throws {
        var parts = (0..<index).map { Part(name: "variables[\($0)].x", body: Array("1".utf8)) }
        parts.append(Part(name: "variables[\(index)].x", body: Array("1".utf8)))
        let bytes = Self.body(parts)
        if index < 32 {
            #expect(try Self.decode(bytes).count == index + 1)
        } else {
            let error = gatewayError { _ = try Self.decode(bytes) }
            #expect(
                error?.message
                    == "multipart field \"variables[32].x\": batch index 32 is over the batch limit of 32 (indices 0 to 31)"
            )
        }
    }

    @Test("Part count is accepted at the limit and rejected one past it", arguments: [4, 5])
    func partLimit(count: Int) throws {
        var limits = CodecLimits.defaults
        limits.maxMultipartParts = 4
        let bytes = Self.body((0..<count).map { Part(name: "variables[0].x\($0)", body: Array("1".utf8)) })
        if count <= 4 {
            #expect(try Self.decode(bytes, limits: limits)[0].variables.count == count)
        } else {
            let error = gatewayError { _ = try Self.decode(bytes, feeding: .byteByByte, limits: limits) }
            #expect(error?.message == "multipart body has more than the limit of 4 parts")
        }
    }

    @Test(
        "JSON members of all fields count toward one maxJSONMembers: at the cap accepted, one past refused",
        arguments: [6, 7])
    func memberLimitAcrossFields(members: Int) throws {
        var limits = CodecLimits.defaults
        limits.maxJSONMembers = 6
        // Three elements in the first field, the rest in the second (another batch element).
        let second = "[" + Array(repeating: "0", count: members - 3).joined(separator: ",") + "]"
        let bytes = Self.body([
            Part(name: "variables[0].a", body: Array("[1,2,3]".utf8)),
            Part(name: "variables[1].b", body: Array(second.utf8)),
        ])
        if members <= 6 {
            #expect(try Self.decode(bytes, limits: limits).count == 2)
        } else {
            let error = gatewayError { _ = try Self.decode(bytes, limits: limits) }
            #expect(error?.code == .invalidArgument)
            #expect(
                error?.message
                    == "variables[1].b[3]: more than the limit of 6 object members and array elements in the body")
        }
    }

    /// The limit counts the field lines with their CRLFs, not the blank line (as the request head's
    /// `max_header_bytes`, review 18 F6): at the limit accepted, 1 and 2 bytes past it refused, whole or a byte
    /// at a time (the blank line arriving after the limit was reached).
    @Test(
        "Part headers are accepted at the size limit and rejected past it",
        arguments: [(0, .whole), (1, .whole), (2, .whole), (0, .byteByByte), (2, .byteByByte)] as [(Int, Feeding)]
    )
    func headerLimit(extra: Int, feeding: Feeding) throws {
        let start = "--b\r\n"
        let disposition = "Content-Disposition: form-data; name=\"variables[0].x\"\r\n"
        // Pad with an ignored header so the field lines (without the blank line) are exactly limit + extra bytes.
        let limit = 200
        let padLength = limit + extra - disposition.utf8.count - "X-Pad: \r\n".utf8.count
        let text = start + disposition + "X-Pad: " + String(repeating: "p", count: padLength) + "\r\n\r\n1\r\n--b--"
        var limits = CodecLimits.defaults
        limits.maxMultipartPartHeaderBytes = limit
        if extra == 0 {
            #expect(
                try Self.decode(Array(text.utf8), feeding: feeding, limits: limits, boundary: "b")[0].variables
                    == ["x": .number(1)])
        } else {
            let error = gatewayError {
                _ = try Self.decode(Array(text.utf8), feeding: feeding, limits: limits, boundary: "b")
            }
            #expect(error?.message == "multipart part 1 has more than 200 bytes of headers")
        }
    }

    @Test(
        "Malformed bodies fail with clear messages",
        arguments: [
            (
                "--b\r\nContent-Disposition: form-data; name=\"variables[0].x\"\r\n\r\n1\r\n",
                #"multipart body ended before its closing boundary "--b--""#
            ),
            ("no delimiter at all", #"multipart body ended before its closing boundary "--b--""#),
            (
                "--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",
                #"multipart part 1 has no name (Content-Disposition: form-data; name="...")"#
            ),
            (
                "--b\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\n1\r\n--b--",
                #"multipart part 1: Content-Disposition must be form-data, found "attachment""#
            ),
            ("--b\r\nbroken header\r\n\r\n1\r\n--b--", "multipart part 1 has a malformed header line"),
            // Protocol review 58, L9: the last one won, where a proxy in front may read the first.
            (
                "--b\r\nContent-Disposition: form-data; name=\"variables[0].a\"\r\n"
                    + "Content-Disposition: form-data; name=\"variables[0].b\"\r\n\r\n1\r\n--b--",
                "multipart part 1 has more than one content-disposition header"
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"variables[0].a\"\r\nContent-Type: text/plain\r\n"
                    + "content-type: application/json\r\n\r\n1\r\n--b--",
                "multipart part 1 has more than one content-type header"
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"variables[0].a\"\r\nContent-Type : text/plain\r\n\r\n1\r\n--b--",
                "multipart part 1 has a malformed header line"
            ),
            ("--bX\r\n", "malformed multipart body: unexpected bytes after a boundary"),
            (
                "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--",
                #"multipart field "x": expected a name like variables[0].key, inputs[0].key or variables[0].key[0]"#
            ),
            ("--b--", "multipart body has no variables[i].key fields: a trigger needs at least one batch element"),
            (
                "--b\r\nContent-Disposition: form-data; name=\"variables[1].x\"\r\n\r\n1\r\n--b--",
                "multipart body has variables[1] but no variables[0]: batch indices must start at 0 without gaps"
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"variables[0].x\"\r\n\r\n1\r\n"
                    + "--b\r\nContent-Disposition: form-data; name=\"variables[0].x[0]\"\r\n\r\n2\r\n--b--",
                #"multipart field "variables[0].x[0]": x is sent both as a value and as array elements"#
            ),
        ]
    )
    func malformed(text: String, message: String) {
        for feeding in Feeding.allCases {
            let error = gatewayError { _ = try Self.decode(Array(text.utf8), feeding: feeding, boundary: "b") }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == message, "\(feeding)")
        }
    }

    @Test("Invalid boundaries are rejected up front", arguments: ["", String(repeating: "b", count: 71), "a\r\nb"])
    func invalidBoundary(boundary: String) {
        #expect(throws: GatewayError.self) { _ = try MultipartFormDecoder(boundary: boundary, limits: .defaults) }
    }

    @Test("A body over maxBodyBytes is payloadTooLarge")
    func bodyLimit() {
        var limits = CodecLimits.defaults
        limits.maxBodyBytes = 10
        let error = gatewayError {
            var decoder = try MultipartFormDecoder(boundary: "b", limits: limits)
            try decoder.feed(buffer("0123456789"))
            try decoder.feed(buffer("x"))
        }
        #expect(error?.code == .payloadTooLarge)
    }

    @Test("filename* (RFC 8187) wins over filename")
    func extendedFileName() throws {
        let text =
            "--b\r\nContent-Disposition: form-data; name=\"variables[0].f\"; filename=\"naive.txt\"; "
            + "filename*=UTF-8''na%C3%AFve.txt\r\n\r\nabc\r\n--b--"
        let blob = try Self.decode(Array(text.utf8), boundary: "b")[0].variables["f"]?.blobValue
        #expect(blob?.fileName == "naïve.txt")
        #expect(blob?.contentType == Blob.defaultContentType)
    }

    /// Review 23 L3: file names as urllib3 2 (the SDKs' `requests`) and curl 7.81+ write them, the HTML standard's
    /// way (`"` as `%22`, CR/LF as `%0D`/`%0A`, a backslash raw), reach the pipeline as the user's file was named;
    /// the older backslash escapes (`\"`, `\\`, curl before 7.81) too.
    @Test(
        "file names: the HTML standard's %22 / %0D / %0A undone, a raw backslash kept, other % left alone",
        arguments: [
            (#"quote%22and;semi.bin"#, #"quote"and;semi.bin"#), (#"back\slash.txt"#, #"back\slash.txt"#),
            ("résumé été.pdf", "résumé été.pdf"), ("percent%41.txt", "percent%41.txt"),
            (#"two%0D%0Alines%0a.txt"#, "two\r\nlines\n.txt"), (#"old\"curl\\style.txt"#, #"old"curl\style.txt"#),
            ("trailing%2", "trailing%2"), ("%22", "\""),
        ])
    func htmlStandardFileNames(sent: String, received: String) throws {
        let text =
            "--b\r\nContent-Disposition: form-data; name=\"variables[0].f\"; filename=\"\(sent)\"\r\n\r\nabc\r\n--b--"
        let blob = try Self.decode(Array(text.utf8), boundary: "b")[0].variables["f"]?.blobValue
        #expect(blob?.fileName == received)
    }
}

/// What a `MultipartFileObserver` was told, in order.
final class RecordingFileObserver: MultipartFileObserver {
    var began: [(name: String, fileName: String?, dataOffset: Int, closingBytes: Int, inputs: [TriggerInput])] = []
    var bytes: [UInt8] = []
    var ended: [ByteBuffer] = []
    var observe = true

    func fileBegan(_ start: MultipartFileStart) -> Bool {
        let inputs = (try? start.inputs(ifLastWith: ByteBuffer(string: "PLACEHOLDER"))) ?? []
        began.append((start.name, start.fileName, start.dataOffset, start.closingBytes, inputs))
        return observe
    }

    func fileBytes(_ bytes: UnsafeRawBufferPointer) {
        #expect(!bytes.isEmpty)
        self.bytes += bytes
    }

    func fileEnded(_ body: ByteBuffer) { ended.append(body) }
}

@Suite("MultipartFormDecoder file observer (streaming relay)")
struct MultipartFileObserverTests {
    typealias Part = MultipartFormDecoderTests.Part
    static let boundary = MultipartFormDecoderTests.boundary

    @Test(
        "a file part's bytes reach the observer exactly as the blob gets them, however the body is chunked",
        arguments: MultipartFormDecoderTests.Feeding.allCases)
    func fileBytesInOrder(feeding: MultipartFormDecoderTests.Feeding) throws {
        let file = MultipartFormDecoderTests.trickyFile
        let bytes = MultipartFormDecoderTests.body(
            [
                Part(name: "variables[0].n", body: Array("7".utf8)),
                Part(name: "variables[0].text", contentType: "text/plain", body: Array("not a file".utf8)),
                Part(name: "variables[0].image", fileName: "cat.png", contentType: "image/png", body: file),
            ],
            preamble: "pre\r\n")
        let observer = RecordingFileObserver()
        var decoder = try MultipartFormDecoder(boundary: Self.boundary, limits: .defaults)
        decoder.fileObserver = observer
        let step = feeding == .whole ? bytes.count : feeding == .byteByByte ? 1 : 7
        var i = 0
        while i < bytes.count {
            try decoder.feed(ByteBuffer(bytes: bytes[i..<min(i + step, bytes.count)]))
            i += step
        }
        let inputs = try decoder.finish()
        try #require(observer.began.count == 1)
        let began = observer.began[0]
        #expect(began.name == "variables[0].image" && began.fileName == "cat.png")
        // The file is the last part: its length is the body's less its offset and the close delimiter.
        #expect(bytes.count - began.dataOffset - began.closingBytes == file.count)
        #expect(Array(bytes[began.dataOffset..<(began.dataOffset + file.count)]) == file)
        #expect(observer.bytes == file)
        try #require(observer.ended.count == 1)
        let blob = try #require(inputs[0].variables["image"]?.blobValue)
        #expect(Array(blob.bytes.readableBytesView) == file)
        // The very buffer the batch keeps.
        #expect(
            observer.ended[0].withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
                == blob.bytes.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) })
        // The batch it would make as the last part: the fields before it plus this part's content.
        let provisional = try #require(began.inputs.first)
        #expect(provisional.variables["n"] == .number(7))
        #expect(provisional.variables["text"] == .string("not a file"))
        #expect(
            Array(provisional.variables["image"]?.blobValue?.bytes.readableBytesView ?? []) == Array("PLACEHOLDER".utf8)
        )
    }

    @Test("an observer that declines a part gets none of its bytes; each file part is offered")
    func declined() throws {
        let bytes = MultipartFormDecoderTests.body([
            Part(name: "variables[0].a", fileName: "a.bin", body: Array("aaaa".utf8)),
            Part(name: "variables[0].b", fileName: "b.bin", body: Array("bbbbbb".utf8)),
        ])
        let observer = RecordingFileObserver()
        observer.observe = false
        var decoder = try MultipartFormDecoder(boundary: Self.boundary, limits: .defaults)
        decoder.fileObserver = observer
        try decoder.feed(ByteBuffer(bytes: bytes))
        _ = try decoder.finish()
        #expect(observer.began.map(\.name) == ["variables[0].a", "variables[0].b"])
        #expect(observer.bytes.isEmpty && observer.ended.isEmpty)
    }

    @Test("a decoder collecting plain parts (Craft) tells no observer")
    func partsModeNotObserved() throws {
        let bytes = MultipartFormDecoderTests.body([Part(name: "f", fileName: "a.bin", body: Array("aaaa".utf8))])
        let observer = RecordingFileObserver()
        var decoder = try MultipartFormDecoder(boundary: Self.boundary, limits: .defaults, collectingParts: true)
        decoder.fileObserver = observer
        try decoder.feed(ByteBuffer(bytes: bytes))
        #expect(try decoder.finishParts().count == 1)
        #expect(observer.began.isEmpty)
    }
}

@Suite("MediaType")
struct MediaTypeTests {
    @Test("Type is lowercased and parameters unquoted")
    func parse() {
        let parsed = MediaType.parse(#"Multipart/Form-Data; boundary="a b\"c" ; Charset=utf-8;bad; x="#)
        #expect(parsed.type == "multipart/form-data")
        #expect(parsed.parameters == ["boundary": "a b\"c", "charset": "utf-8", "x": ""])
        #expect(MediaType.parse("application/json").parameters.isEmpty)
    }

    @Test("in a quoted value, \\\" and \\\\ are quoted-pairs; a backslash before anything else is kept (review 23 L3)")
    func backslashes() {
        let parsed = MediaType.parse(#"form-data; a="x\"y"; b="x\\y"; c="x\y"; d="x\""#)
        #expect(parsed.parameters["a"] == #"x"y"#)
        #expect(parsed.parameters["b"] == #"x\y"#)
        #expect(parsed.parameters["c"] == #"x\y"#)
        #expect(parsed.parameters["d"] == #"x""#)  // a backslash before the closing quote escapes it
        #expect(MediaType.decodeFormDataEscapes("a%22b%0d%0Ac%41") == "a\"b\r\nc%41")
        #expect(MediaType.decodeFormDataEscapes("no escapes") == "no escapes")
    }
}
