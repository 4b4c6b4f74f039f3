package import NIOCore
package import TriggerModel

/// One part of a `multipart/form-data` body as sent: its field name, file name and content type (from its
/// `Content-Disposition` and `Content-Type` headers, RFC 7578 §4.2 and §4.4) and its bytes.
package struct MultipartPart: Sendable {
    package var name: String
    /// `filename` (or RFC 8187 `filename*`); a part that has one is a file upload.
    package var fileName: String?
    package var contentType: String?
    package var body: ByteBuffer

    package init(name: String, fileName: String? = nil, contentType: String? = nil, body: ByteBuffer) {
        self.name = name
        self.fileName = fileName
        self.contentType = contentType
        self.body = body
    }

    /// This field's text as UTF-8 (``utf8Text(_:contentType:field:)``).
    package func utf8Text() throws(GatewayError) -> ByteBuffer {
        try Self.utf8Text(body, contentType: contentType, field: name)
    }

    /// A field's text as UTF-8, by the `charset` its `Content-Type` names (RFC 7578 §4.4; none means UTF-8, as
    /// RFC 7578 §5.1.2 and the HTML form encoding have it): UTF-8 and US-ASCII as sent, ISO-8859-1 transcoded.
    ///
    /// - Throws: `.invalidArgument` naming the field for bytes that are not well-formed UTF-8 (Unicode §3.9) in a
    ///   UTF-8 field, and for any other charset. Before, such text reached the runner with U+FFFD in place of its
    ///   bytes (protocol review 58, M1: `curl -F 'x=<latin1.txt'`), where the same bytes in a JSON body are a 400.
    package static func utf8Text(_ body: ByteBuffer, contentType: String?, field: String) throws(GatewayError)
        -> ByteBuffer
    {
        let charset = contentType.flatMap { MediaType.parse($0).parameters["charset"]?.lowercased() }
        switch charset {
        case nil, "utf-8", "utf8", "us-ascii", "ascii":
            let wellFormed = body.withUnsafeReadableBytes { bytes in
                bytes.isEmpty
                    || UTF8Validation.isWellFormed(
                        bytes.assumingMemoryBound(to: UInt8.self).baseAddress!, count: bytes.count)
            }
            guard wellFormed else {
                throw GatewayError(
                    .invalidArgument,
                    "\(field): the text is not valid UTF-8: send it in UTF-8, name its charset (charset="
                        + "iso-8859-1 is read) in the part's Content-Type, or send the bytes as a file (with a filename)"
                )
            }
            return body
        case "iso-8859-1", "iso_8859-1", "latin1", "l1", "iso-ir-100", "cp819", "ibm819", "csisolatin1",
            "iso_8859-1:1987":
            // Each byte is the code point of the same number: U+0080...U+00FF take two bytes in UTF-8.
            var text = ByteBuffer()
            text.reserveCapacity(body.readableBytes * 2)
            for byte in body.readableBytesView {
                if byte < 0x80 {
                    text.writeInteger(byte)
                } else {
                    text.writeInteger(0xC0 | byte >> 6)
                    text.writeInteger(0x80 | byte & 0x3F)
                }
            }
            return text
        case let other?:
            throw GatewayError(
                .invalidArgument,
                "\(field): charset \"\(other.prefix(40))\" is not read here: send the text in UTF-8 (or "
                    + "ISO-8859-1), or the bytes as a file (with a filename)")
        }
    }

    /// The same rule as a trigger's fields: a file name, or a content type other than text or JSON.
    package var isFile: Bool {
        if fileName != nil { return true }
        guard let contentType else { return false }
        let type = MediaType.parse(contentType).type
        return type != "text/plain" && type != "application/json" && !type.isEmpty
    }
}

/// The headers of one multipart part that matter for a trigger: its field name, file name and content type.
struct PartHeaders {
    var name: String
    var fileName: String?
    var contentType: String?

    /// Parses a header block (CRLF-terminated lines, ending with an empty line).
    init(parsing block: [UInt8], partNumber: Int) throws {
        var name: String?
        var fileName: String?
        var contentType: String?
        var sawDisposition = false
        var lineStart = 0
        var i = 0
        while i + 1 < block.count {
            guard block[i] == 0x0D, block[i + 1] == 0x0A else {
                i += 1
                continue
            }
            let line = block[lineStart..<i]
            i += 2
            lineStart = i
            if line.isEmpty { break }
            // No whitespace before the colon either (RFC 9112 §5.1, which RFC 7578 §4.8 part headers follow): a
            // `Content-Type : x` was ignored here, where a lenient proxy may read it (protocol review 58, L9).
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon != line.startIndex,
                line.first != 0x20, line.first != 0x09, line[colon - 1] != 0x20, line[colon - 1] != 0x09
            else {
                throw GatewayError(.invalidArgument, "multipart part \(partNumber) has a malformed header line")
            }
            let headerName = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
            // One of each (RFC 7578 §4.2, §4.4): with two, which one a proxy or a firewall in front reads is its
            // own choice, so the field it checked need not be the one the runner gets (protocol review 58, L9).
            if (headerName == "content-disposition" && sawDisposition)
                || (headerName == "content-type" && contentType != nil)
            {
                throw GatewayError(
                    .invalidArgument, "multipart part \(partNumber) has more than one \(headerName) header")
            }
            switch headerName {
            case "content-disposition":
                sawDisposition = true
                let parsed = MediaType.parse(value)
                guard parsed.type == "form-data" else {
                    throw GatewayError(
                        .invalidArgument,
                        "multipart part \(partNumber): Content-Disposition must be form-data, found \"\(parsed.type)\""
                    )
                }
                name = parsed.parameters["name"].map(MediaType.decodeFormDataEscapes)
                fileName =
                    parsed.parameters["filename*"].flatMap(MediaType.decodeExtendedValue)
                    ?? parsed.parameters["filename"].map(MediaType.decodeFormDataEscapes)
            case "content-type":
                contentType = value.trimmingBlanks()
            default:
                break
            }
        }
        guard let name, !name.isEmpty else {
            throw GatewayError(
                .invalidArgument,
                "multipart part \(partNumber) has no name (Content-Disposition: form-data; name=\"...\")"
            )
        }
        self.name = name
        self.fileName = fileName
        self.contentType = contentType
    }

    /// A file (kept as bytes) rather than a field whose text is JSON-decoded: it has a file name, or a content
    /// type other than text (`text/plain`) or JSON (`application/json`, decoded strictly as JSON).
    var isFile: Bool {
        if fileName != nil { return true }
        guard let contentType else { return false }
        let type = MediaType.parse(contentType).type
        return type != "text/plain" && type != "application/json" && !type.isEmpty
    }

    var isJSON: Bool {
        contentType.map { MediaType.parse($0).type == "application/json" } ?? false
    }
}

/// Where one field goes: batch element `batchIndex`, variable `key`, and for `key[j]` the array position `j`.
struct MultipartFieldName: Equatable {
    var batchIndex: Int
    var key: String
    var element: Int?

    /// Parses `variables[i].key`, `inputs[i].key`, `variables[i].key[j]`. The key is everything after `].`
    /// (dots included) up to an optional trailing `[j]`.
    init?(_ name: String) {
        let bytes = Array(name.utf8)
        var rest: ArraySlice<UInt8>
        if bytes.starts(with: "variables[".utf8) {
            rest = bytes[10...]
        } else if bytes.starts(with: "inputs[".utf8) {
            rest = bytes[7...]
        } else {
            return nil
        }
        guard let close = rest.firstIndex(of: UInt8(ascii: "]")), let i = Self.index(rest[..<close]) else {
            return nil
        }
        rest = rest[(close + 1)...]
        guard rest.first == UInt8(ascii: "."), rest.count > 1 else { return nil }
        rest = rest.dropFirst()
        var element: Int?
        if rest.last == UInt8(ascii: "]"), let open = rest.lastIndex(of: UInt8(ascii: "[")),
            let j = Self.index(rest[(open + 1)..<(rest.endIndex - 1)])
        {
            element = j
            rest = rest[..<open]
        }
        guard !rest.isEmpty else { return nil }
        self.batchIndex = i
        self.key = String(decoding: rest, as: UTF8.self)
        self.element = element
    }

    private static func index(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 9 else { return nil }
        var v = 0
        for c in digits {
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + Int(c - UInt8(ascii: "0"))
        }
        return v
    }
}

/// Collects decoded fields into batch elements, then checks the batch is dense and in limits.
struct MultipartFieldAssembler {
    private enum Slot {
        case single(Value)
        /// `key[j]` elements in arrival order; sorted by `j` when the batch is built.
        case list([(position: Int, value: Value)])
    }

    private struct Element {
        var slots: [(key: String, slot: Slot)] = []
        var index: [String: Int] = [:]
    }

    private let limits: CodecLimits
    private var elements: [Int: Element] = [:]
    /// JSON object members and array elements of the fields so far (`CodecLimits.maxJSONMembers` is per body).
    private var members = 0

    init(limits: CodecLimits) {
        self.limits = limits
    }

    mutating func add(part: PartHeaders, body: ByteBuffer) throws {
        guard let field = MultipartFieldName(part.name) else {
            throw GatewayError(
                .invalidArgument,
                "multipart field \"\(part.name)\": expected a name like variables[0].key, inputs[0].key"
                    + " or variables[0].key[0]"
            )
        }
        guard field.batchIndex < limits.maxBatch else {
            throw GatewayError(
                .invalidArgument,
                "multipart field \"\(part.name)\": batch index \(field.batchIndex) is over the batch limit of "
                    + "\(limits.maxBatch) (indices 0 to \(limits.maxBatch - 1))"
            )
        }
        let value = try Self.value(of: part, body: body, limits: limits, members: &members)
        var element = elements[field.batchIndex] ?? Element()
        defer { elements[field.batchIndex] = element }
        guard let at = element.index[field.key] else {
            element.index[field.key] = element.slots.count
            let slot: Slot = field.element.map { .list([($0, value)]) } ?? .single(value)
            element.slots.append((field.key, slot))
            return
        }
        switch (element.slots[at].slot, field.element) {
        case (.single, nil):
            element.slots[at].slot = .single(value)
        case (.list(var list), let position?):
            list.append((position, value))
            element.slots[at].slot = .list(list)
        default:
            throw GatewayError(
                .invalidArgument,
                "multipart field \"\(part.name)\": \(field.key) is sent both as a value and as array elements"
            )
        }
    }

    /// The batch, in index order; indices must run from 0 without gaps.
    func inputs() throws -> [TriggerInput] {
        guard let highest = elements.keys.max() else {
            throw GatewayError(
                .invalidArgument,
                "multipart body has no variables[i].key fields: a trigger needs at least one batch element"
            )
        }
        var inputs: [TriggerInput] = []
        inputs.reserveCapacity(highest + 1)
        for i in 0...highest {
            guard let element = elements[i] else {
                throw GatewayError(
                    .invalidArgument,
                    "multipart body has variables[\(highest)] but no variables[\(i)]: "
                        + "batch indices must start at 0 without gaps"
                )
            }
            var entries: [(key: String, value: Value)] = []
            entries.reserveCapacity(element.slots.count)
            for entry in element.slots {
                switch entry.slot {
                case .single(let value):
                    entries.append((entry.key, value))
                case .list(let list):
                    // For a repeated position the later part wins, as for a repeated field.
                    var last: [Int: Value] = [:]
                    for (position, value) in list { last[position] = value }
                    // Positions must run from 0 without gaps, as batch indices do: `a[5]` alone is not `[a]`.
                    let highestPosition = last.keys.max() ?? 0
                    if let missing = (0...highestPosition).first(where: { last[$0] == nil }) {
                        throw GatewayError(
                            .invalidArgument,
                            "multipart field \"variables[\(i)].\(entry.key)[\(highestPosition)]\" has no "
                                + "variables[\(i)].\(entry.key)[\(missing)]: array indices must start at 0 without gaps"
                        )
                    }
                    entries.append((entry.key, .list((0...highestPosition).map { last[$0]! })))
                }
            }
            inputs.append(TriggerInput(variables: ValueObject(uniqueKeyEntries: entries)))
        }
        return inputs
    }

    /// A file part's bytes as a blob; a field's text JSON-decoded, or as a string when it is not JSON (a data URI
    /// string still becomes a blob).
    private static func value(
        of part: PartHeaders, body: ByteBuffer, limits: CodecLimits, members: inout Int
    ) throws -> Value {
        if part.isFile {
            return .blob(
                Blob(contentType: part.contentType ?? Blob.defaultContentType, fileName: part.fileName, bytes: body)
            )
        }
        let body = try MultipartPart.utf8Text(body, contentType: part.contentType, field: part.name)
        do {
            return try JSONValueCodec.parse(body, limits: limits, path: part.name, members: &members)
        } catch  where error.isSyntax && !part.isJSON {
            do {
                if let blob = try DataURI.decode(body) { return .blob(blob) }
            } catch {
                throw GatewayError(.invalidArgument, "\(part.name): \(DataURI.message(for: error))")
            }
            return .string(String(buffer: body))
        } catch {
            throw error.error
        }
    }
}

extension String {
    fileprivate func trimmingBlanks() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
