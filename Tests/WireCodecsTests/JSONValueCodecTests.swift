import NIOCore
import Testing
import TriggerModel
import WireCodecs

@Suite("JSONValueCodec")
struct JSONValueCodecTests {
    private func decode(_ text: String, limits: CodecLimits = .defaults) throws -> Value {
        try JSONValueCodec.decode(buffer(text), limits: limits)
    }

    @Test("Objects keep their key order through decode and encode")
    func keyOrder() throws {
        let text = #"{"zeta":1,"alpha":[true,false,null],"mid":{"b":"x","a":-2.5},"empty":{},"list":[]}"#
        let value = try decode(text)
        #expect(value.objectValue?.keys == ["zeta", "alpha", "mid", "empty", "list"])
        #expect(value.objectValue?["mid"]?.objectValue?.keys == ["b", "a"])
        #expect(encodeJSON(value) == text)
    }

    @Test("Scalars decode to the right cases")
    func scalars() throws {
        let value = try decode(#" [ 0 , -0.5 , 1e3 , 12345678901234567890 , "s" , true , null ] "#)
        #expect(
            value
                == .list([
                    .number(0), .number(-0.5), .number(1000),
                    .largeInteger(try #require(LargeInteger("12345678901234567890"))), .string("s"),
                    .bool(true), .null,
                ])
        )
    }

    @Test(
        "Numbers print integral values without a fraction and others in shortest form",
        arguments: [
            (1.0, "1"), (-3.0, "-3"), (0.1, "0.1"), (1e-5, "1e-05"), (123456789012.0, "123456789012"),
            (1.5e300, "1.5e+300"), (Double.nan, "null"), (Double.infinity, "null"),
            // Integral doubles up to 1e16 (a protobuf `number_value`, say): digits, never Swift's `….0` form.
            (9_007_199_254_740_992.0, "9007199254740992"), (-9_007_199_254_740_994.0, "-9007199254740994"),
            (9_999_999_999_999_998.0, "9999999999999998"), (1e16, "1e+16"),
        ]
    )
    func numberWriting(number: Double, expected: String) throws {
        #expect(encodeJSON(.number(number)) == expected)
        if number.isFinite && abs(number) <= 9_007_199_254_740_992 { #expect(try decode(expected) == .number(number)) }
    }

    @Test(
        "Integer literals come back with their digits: exact up to 2^53 as numbers, past it as large integers",
        arguments: [
            ("9007199254740992", "9007199254740992", false),  // 2^53: the last a Double holds with its neighbours
            ("-9007199254740992", "-9007199254740992", false),
            ("9007199254740993", "9007199254740993", true),  // 2^53 + 1: a Double would make it …992
            ("9223372036854775807", "9223372036854775807", true),  // Int64.max
            ("-9223372036854775808", "-9223372036854775808", true),  // -2^63
            ("18446744073709551615", "18446744073709551615", true),  // UInt64.max
            ("18446744073709551616", "18446744073709551616", true),  // 2^64
            ("123456789012345678901234567890", "123456789012345678901234567890", true),
            ("-0", "0", false),  // no negative zero in the writer's integers
            ("0", "0", false),
            ("0.1", "0.1", false),
            ("-0.0", "-0.0", false),  // written as a float: kept one (`NumberForm.float`)
            ("1e2", "100.0", false),
        ]
    )
    func integerRoundTrip(text: String, expected: String, large: Bool) throws {
        let value = try decode(text)
        if case .largeInteger = value { #expect(large, "\(text)") } else { #expect(!large, "\(text)") }
        #expect(encodeJSON(value) == expected)
        #expect(encodeJSON(.list([value, .object(["n": value])])) == "[\(expected),{\"n\":\(expected)}]")
    }

    /// The SDK reviewer of session 54: `2.0` reached an http runner as `2`, which Python reads as an `int`.
    @Test(
        "A number written as a float stays one: integral values keep a fraction, integers none, others print as before",
        arguments: [
            ("2.0", "2.0", NumberForm.float), ("2", "2", .plain), ("-3.0", "-3.0", .float), ("2.50", "2.5", .float),
            ("1E2", "100.0", .float), ("1e-2", "0.01", .float), ("2e0", "2.0", .float), ("0.0", "0.0", .float),
            ("-0.0", "-0.0", .float), ("-0", "0", .plain), ("9007199254740992.0", "9007199254740992.0", .float),
            ("9999999999999998.0", "9999999999999998.0", .float), ("1e16", "1e+16", .float),
            ("1.5e300", "1.5e+300", .float), ("123456789012345", "123456789012345", .plain),
            // An integer of 16 digits takes the slower path and is plain too.
            ("1234567890123456", "1234567890123456", .plain),
        ]
    )
    func numberForm(text: String, expected: String, form: NumberForm) throws {
        let value = try decode(text)
        guard case .number(_, let decoded) = value else {
            Issue.record("\(text) decoded as \(value)")
            return
        }
        #expect(decoded == form, "\(text)")
        #expect(encodeJSON(value) == expected)
        #expect(encodeJSON(.object(["n": .list([value])])) == "{\"n\":[\(expected)]}")
        // What is written reads back in the same form (a second hop writes the same text).
        #expect(encodeJSON(try decode(expected)) == expected)
    }

    @Test("Numbers past a Double's range are refused, not made infinite", arguments: ["1e400", "-1e400", "1.5e309"])
    func outOfRange(text: String) throws {
        #expect(throws: GatewayError.self) { try decode(text) }
    }

    @Test("A runner's answer may hold Python's NaN, Infinity and -Infinity (json.dumps' default); a client's may not")
    func nonFiniteTokens() throws {
        let answer = CodecLimits.defaults.forBackendAnswers
        let value = try decode(#"{"n":[NaN,Infinity,-Infinity,-1,0.5],"s":"NaN"}"#, limits: answer)
        guard case .list(let items)? = value.objectValue?["n"] else {
            Issue.record("\(value)")
            return
        }
        let numbers = items.map { $0.numberValue }
        #expect(numbers[0]?.isNaN == true)
        #expect(numbers[1] == Double.infinity)
        #expect(numbers[2] == -Double.infinity)
        #expect(numbers[3] == -1 && numbers[4] == 0.5)
        #expect(value.objectValue?["s"] == .string("NaN"))
        // JSON has no such number: a JSON reader gets null, as from a grpc runner's number_value.
        #expect(encodeJSON(value) == #"{"n":[null,null,null,-1,0.5],"s":"NaN"}"#)
        // Only Python's spellings: not JavaScript's lower case, a sign on NaN, a plus, or a prefix of one.
        for text in ["nan", "inf", "-inf", "+Infinity", "-NaN", "Infinit", "NaNx", "-Infinityx", "[Na]", "-I"] {
            #expect(throws: GatewayError.self, "\(text)") { try decode(text, limits: answer) }
        }
        // A client's body, and the gateway's own limits, are strict RFC 8259.
        for text in ["NaN", "Infinity", "-Infinity", #"{"n":NaN}"#] {
            #expect(throws: GatewayError.self, "\(text)") { try decode(text) }
        }
    }

    @Test("Value.integer picks the exact case; numberValue and int64Value read both")
    func integerConstructors() throws {
        #expect(Value.integer(Int64(1) << 53) == .number(9_007_199_254_740_992))
        #expect(Value.integer((Int64(1) << 53) + 1) == .largeInteger(try #require(LargeInteger("9007199254740993"))))
        #expect(Value.integer(Int64.min).int64Value == Int64.min)
        #expect(Value.integer(UInt64.max) == .largeInteger(try #require(LargeInteger("18446744073709551615"))))
        #expect(Value.integer(UInt64.max).int64Value == nil)
        #expect(Value.integer(UInt64.max).numberValue == 18_446_744_073_709_551_616.0)
        #expect(LargeInteger("9007199254740992") == nil, "2^53 is a number")
        #expect(LargeInteger("09007199254740993") == nil, "a leading zero is not JSON")
        #expect(LargeInteger("9007199254740993.0") == nil)
        #expect(Value.integer(text: "-0")?.numberValue?.sign == .minus)
        #expect(Value.integer(text: "1.5") == nil)
    }

    @Test("String escapes decode, including surrogate pairs")
    func escapes() throws {
        let value = try decode(#""a\"b\\c\/d\b\f\n\r\t\u00e9\u4e2d\ud83d\ude00""#)
        #expect(value == .string("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{4e2d}\u{1F600}"))
    }

    @Test("Raw UTF-8 passes through and encodes unescaped")
    func utf8() throws {
        let value = try decode(#"{"clé":"naïve 😀"}"#)
        #expect(value == .object(["clé": .string("naïve 😀")]))
        #expect(encodeJSON(value) == #"{"clé":"naïve 😀"}"#)
    }

    @Test("Strings encode with RFC 8259 escapes and round-trip")
    func stringWriting() throws {
        let original = "q\"b\\s/\n\t\u{1}\u{1f}é"
        let text = encodeJSON(.string(original))
        #expect(text == #""q\"b\\s/\n\t\u0001\u001fé""#)
        #expect(try decode(text) == .string(original))
    }

    @Test("Duplicate keys keep the first position and the last value")
    func duplicateKeys() throws {
        let small = try decode(#"{"a":1,"b":2,"a":3}"#)
        #expect(small.objectValue?.keys == ["a", "b"])
        #expect(small.objectValue?["a"] == .number(3))
        // Past the linear-scan threshold the parser indexes keys; the semantics must not change.
        let keys = (0..<20).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let large = try decode("{\(keys),\"k3\":99}")
        #expect(large.objectValue?.count == 20)
        #expect(large.objectValue?.keys.first == "k0")
        #expect(large.objectValue?["k3"] == .number(99))
    }

    @Test("Nesting is accepted at the depth limit and rejected one past it", arguments: [63, 64, 65])
    func depthLimit(depth: Int) throws {
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        if depth <= CodecLimits.defaults.maxDepth {
            _ = try decode(text)
        } else {
            let error = gatewayError { _ = try decode(text) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("nesting deeper than the limit of 64") == true)
        }
    }

    @Test("Depth counts objects and arrays alike and the error names the path")
    func depthPath() {
        var limits = CodecLimits.defaults
        limits.maxDepth = 3
        let error = gatewayError { _ = try decode(#"{"a":[{"b":{}}]}"#, limits: limits) }
        #expect(error?.message == "a[0].b: nesting deeper than the limit of 3 levels")
    }

    // MARK: Width (review 24 M2)

    private static func listCount(_ value: Value?) -> Int? {
        guard case .list(let list)? = value else { return nil }
        return list.count
    }

    /// Limits whose member cap is `n`.
    private static func membersCapped(_ n: Int) -> CodecLimits {
        var limits = CodecLimits.defaults
        limits.maxJSONMembers = n
        return limits
    }

    @Test("The default member cap holds a body of 100,000 array elements and refuses one more")
    func defaultMemberCap() throws {
        #expect(CodecLimits.defaults.maxJSONMembers == 100_000)
        // {"v": [0 × (n − 1)]}: the member "v" and n − 1 elements.
        let atLimit = "{\"v\":[" + Array(repeating: "0", count: 99_999).joined(separator: ",") + "]}"
        #expect(try Self.listCount(decode(atLimit).objectValue?["v"]) == 99_999)
        let past = "{\"v\":[" + Array(repeating: "0", count: 100_000).joined(separator: ",") + "]}"
        let error = gatewayError { _ = try decode(past) }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message == "v[99999]: more than the limit of 100000 object members and array elements in the body")
    }

    @Test("Object members count up to the cap; one more is refused, naming the object", arguments: [4, 5])
    func objectMemberCap(keys: Int) throws {
        let text = "{\"o\":{" + (0..<keys).map { "\"k\($0)\":0" }.joined(separator: ",") + "}}"
        let limits = Self.membersCapped(5)
        if 1 + keys <= 5 {
            #expect(try decode(text, limits: limits).objectValue?["o"]?.objectValue?.count == keys)
        } else {
            let error = gatewayError { _ = try decode(text, limits: limits) }
            #expect(error?.message == "o: more than the limit of 5 object members and array elements in the body")
        }
    }

    @Test("Array elements count up to the cap; one more is refused, naming the element", arguments: [5, 6])
    func arrayElementCap(elements: Int) throws {
        let text = "[" + Array(repeating: "null", count: elements).joined(separator: ",") + "]"
        let limits = Self.membersCapped(5)
        if elements <= 5 {
            #expect(try Self.listCount(decode(text, limits: limits)) == elements)
        } else {
            let error = gatewayError { _ = try decode(text, limits: limits) }
            #expect(error?.message == "[5]: more than the limit of 5 object members and array elements in the body")
        }
    }

    @Test("The cap counts the whole document: members of nested objects and arrays add up, repeated keys each time")
    func nestedMembersAddUp() throws {
        // a, [1], [2], b, c, {x}, x, a again: 8 members and elements, 3 nesting levels.
        let text = #"{"a":[1,{"b":{"c":[{"x":0}]}}],"a":0}"#
        #expect(try decode(text, limits: Self.membersCapped(8)).objectValue?.count == 1)
        let error = gatewayError { _ = try decode(text, limits: Self.membersCapped(7)) }
        #expect(error?.message == "body: more than the limit of 7 object members and array elements in the body")
        // Empty containers hold no members.
        #expect(try decode(#"{"a":{},"b":[]}"#, limits: Self.membersCapped(2)).objectValue?.count == 2)
    }

    @Test("Several documents of one body (multipart fields) share the cap through `members`")
    func membersAcrossDocuments() throws {
        let limits = Self.membersCapped(5)
        var members = 0
        _ = try JSONValueCodec.decode(buffer("[1,2,3]"), limits: limits, path: "x", members: &members)
        #expect(members == 3)
        _ = try JSONValueCodec.decode(buffer(#"{"a":1,"b":2}"#), limits: limits, path: "y", members: &members)
        #expect(members == 5)
        let error = gatewayError {
            _ = try JSONValueCodec.decode(buffer("[1]"), limits: limits, path: "z", members: &members)
        }
        #expect(error?.message == "z[0]: more than the limit of 5 object members and array elements in the body")
    }

    @Test("The in-place decode of a trigger body holds the cap too")
    func inPlaceMemberCap() throws {
        let body = #"{"data":[{"variable":{"a":1,"b":2}}]}"#  // data, [0], variable, a, b
        _ = try JSONValueCodec.decodeObject(inPlace: buffer(body), limits: Self.membersCapped(5))
        let error = gatewayError {
            _ = try JSONValueCodec.decodeObject(inPlace: buffer(body), limits: Self.membersCapped(4))
        }
        #expect(
            error?.message
                == "data[0].variable: more than the limit of 4 object members and array elements in the body")
    }

    @Test(
        "Malformed JSON fails with a clear message",
        arguments: [
            ("", "invalid JSON at byte 0: empty document"),
            ("   ", "invalid JSON at byte 3: empty document"),
            ("{", "invalid JSON at byte 1: expected a string key, found end of input"),
            (#"{"a" 1}"#, "invalid JSON at byte 5: expected ':' after object key, found '1'"),
            (#"{"a":1,}"#, "invalid JSON at byte 7: expected a string key, found '}'"),
            (#"{"a":1 "b":2}"#, "invalid JSON at byte 7: expected ',' or '}' after an object member"),
            ("[1,]", "invalid JSON at byte 3: unexpected ']', expected a value (in [1])"),
            ("[1 2]", "invalid JSON at byte 3: expected ',' or ']' after an array element"),
            ("01", "invalid JSON at byte 1: invalid number: leading zero"),
            ("-", "invalid JSON at byte 1: invalid number: expected a digit"),
            ("1.", "invalid JSON at byte 2: invalid number: expected a digit after '.'"),
            ("1e", "invalid JSON at byte 2: invalid number: expected exponent digits"),
            ("NaN", "invalid JSON at byte 0: unexpected 'N', expected a value"),
            ("Infinity", "invalid JSON at byte 0: unexpected 'I', expected a value"),
            ("1e999", "invalid JSON at byte 5: number 1e999 is out of range"),
            ("tru", "invalid JSON at byte 0: invalid literal, expected 'true'"),
            (#"{"a":1} x"#, "invalid JSON at byte 8: unexpected 'x' after the JSON value"),
            (#""abc"#, "invalid JSON at byte 0: unterminated string"),
            ("\"a\u{1}\"", "invalid JSON at byte 2: unescaped control character in string"),
            (#""\x""#, #"invalid JSON at byte 2: invalid escape '\x' in string"#),
            (#""\u12G4""#, #"invalid JSON at byte 5: invalid \u escape: expected 4 hex digits"#),
            (#""\ud83d""#, #"invalid \u escape: high surrogate not followed by a low surrogate"#),
            (#""\ude00""#, #"invalid \u escape: lone low surrogate \uDE00"#),
            (#"{"data":[{"variable":{"x":tru}}]}"#, "(in data[0].variable.x)"),
        ]
    )
    func malformed(text: String, message: String) {
        let error = gatewayError { _ = try decode(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "nil")")
    }

    /// Where each error is placed (the parser adds keys and indices as a failure unwinds through the containers,
    /// so a separator's error is the element's it follows, and a key's own error is its object's), exactly, with a
    /// multipart field's prefix.
    @Test(
        "A syntax error names the container it is in: a key's own error its object, a separator's the element before it",
        arguments: [
            ("[1 2]", "", "invalid JSON at byte 3: expected ',' or ']' after an array element, found '2' (in [0])"),
            (#"{"a":1 "b":2}"#, "", #"invalid JSON at byte 7: expected ',' or '}' after an object member, found '"'"#),
            (#"{"a":{"b" 1}}"#, "", "invalid JSON at byte 10: expected ':' after object key, found '1' (in a)"),
            (#"{"a":[1,{"b":}]}"#, "", "invalid JSON at byte 13: unexpected '}', expected a value (in a[1].b)"),
            ("[[1,2", "", "invalid JSON at byte 5: unexpected end of input in an array (in [0][1])"),
            (
                #"{"a":[1,{"b":}]}"#, "field",
                "invalid JSON at byte 13: unexpected '}', expected a value (in field.a[1].b)"
            ),
            (
                "[1 2]", "field",
                "invalid JSON at byte 3: expected ',' or ']' after an array element, found '2' (in field[0])"
            ),
            ("{", "field", "invalid JSON at byte 1: expected a string key, found end of input (in field)"),
        ]
    )
    func syntaxErrorLocation(text: String, prefix: String, message: String) {
        let error = gatewayError { _ = try JSONValueCodec.decode(ByteBuffer(string: text), path: prefix) }
        #expect(error?.message == message)
    }

    @Test("Invalid UTF-8 in a string is rejected")
    func invalidUTF8() {
        let error = gatewayError { _ = try JSONValueCodec.decode(buffer([0x22, 0x61, 0xC3, 0x28, 0x22])) }
        #expect(error?.message.contains("invalid UTF-8 in string") == true)
    }

    @Test("A data URI string becomes a blob with the exact bytes and content type")
    func dataURI() throws {
        let bytes = pseudoRandomBytes(1000)
        var encoded = ByteBuffer()
        bytes.withUnsafeBytes { Base64.encode($0, into: &encoded) }
        let text = #"{"image":"data:image/png;base64,\#(encoded.text)","note":"data: not a uri"}"#
        let object = try #require(try decode(text).objectValue)
        let blob = try #require(object["image"]?.blobValue)
        #expect(blob.contentType == "image/png")
        #expect(blob.fileName == nil)
        #expect(Array(blob.bytes.readableBytesView) == bytes)
        #expect(object["note"] == .string("data: not a uri"))
        // And back: the writer renders the blob as the same data URI.
        #expect(encodeJSON(.object(object)) == text)
    }

    @Test("Data URIs: parameters kept, empty type defaulted, escapes handled by the slow path")
    func dataURIVariants() throws {
        let withParams = try decode(#""data:text/plain;charset=utf-8;base64,aGk=""#).blobValue
        #expect(withParams?.contentType == "text/plain;charset=utf-8")
        #expect(withParams.map { String(buffer: $0.bytes) } == "hi")
        // RFC 2397 §2: an omitted media type is text/plain;charset=US-ASCII; with only a charset, text/plain.
        let untyped = try decode(#""data:;base64,aGk=""#).blobValue
        #expect(untyped?.contentType == "text/plain;charset=US-ASCII")
        let charsetOnly = try decode(#""data:;charset=utf-8;base64,aGk=""#).blobValue
        #expect(charsetOnly?.contentType == "text/plain;charset=utf-8")
        let escaped = try decode(#""data:image\/png;base64,aGk\/""#).blobValue
        #expect(escaped?.contentType == "image/png")
        #expect(escaped.map { Array($0.bytes.readableBytesView) } == [0x68, 0x69, 0x3F])
        // Not base64 data URIs: stay strings.
        #expect(try decode(#""data:text/plain,hello""#) == .string("data:text/plain,hello"))
        #expect(try decode(#""database""#) == .string("database"))
    }

    /// `DataURIs.text` (the Craft AI surface): a data URI is a string like any other, on the fast path (no
    /// escapes), the escaped slow path and nested, and a bad payload is no error; the default still decodes.
    @Test("DataURIs.text keeps data URIs as strings, fast and escaped paths, nested; the default makes blobs")
    func dataURIsAsText() throws {
        let fast = #"data:text/plain;base64,aGVsbG8="#
        let escaped = #"data:image\/png;base64,aGk\/"#
        let text = #"{"a":"\#(fast)","b":"\#(escaped)","c":[{"d":"\#(fast)"}],"e":"data:;base64,!!"}"#
        let object = try #require(
            try JSONValueCodec.decode(ByteBuffer(string: text), dataURIs: .text).objectValue)
        #expect(object["a"] == .string(fast))
        #expect(object["b"] == .string("data:image/png;base64,aGk/"))
        #expect(object["c"] == .list([.object(["d": .string(fast)])]))
        #expect(object["e"] == .string("data:;base64,!!"))
        var members = 0
        #expect(
            try JSONValueCodec.decode(
                ByteBuffer(string: "\"\(fast)\""), limits: .defaults, path: "f", members: &members, dataURIs: .text)
                == .string(fast))
        #expect(
            try JSONValueCodec.decodeObject(ByteBuffer(string: #"{"a":"\#(fast)"}"#), dataURIs: .text)["a"]
                == .string(fast))
        // The default (the Instill REST rule, API.md §2) is unchanged.
        #expect(
            try JSONValueCodec.decode(ByteBuffer(string: "\"\(fast)\"")).blobValue?.bytes == ByteBuffer(string: "hello")
        )
    }

    @Test("Invalid base64 in a data URI names the field path")
    func invalidBase64() {
        let text = #"{"data":[{"variable":{"image":"data:image/png;base64,iVBO!!=="}}]}"#
        let error = gatewayError { _ = try decode(text) }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message
                == "data[0].variable.image: invalid base64 in data URI at payload offset 4: invalid character '!'"
        )
    }

    // Behaviour change (shared DataURI): parameters and file names are kept, percent-encoded, instead of the
    // content type being cut down to what was URI-safe and the file name dropped.
    @Test("Blob content types keep their parameters and file names, percent-encoded so they decode back")
    func blobContentTypeAndFileNameKept() throws {
        let blob = Blob(contentType: "text/plain; charset=\"utf-8\"", bytes: buffer("hi"))
        #expect(encodeJSON(.blob(blob)) == #""data:text/plain;%20charset=%22utf-8%22;base64,aGk=""#)
        let spaced = Blob(contentType: "text/plain; charset=utf-8", fileName: "a b.txt", bytes: buffer("hi"))
        let text = encodeJSON(.blob(spaced))
        #expect(text == #""data:text/plain;%20charset=utf-8;filename=a%20b.txt;base64,aGk=""#)
        #expect(try decode(text) == .blob(spaced))
    }
}
