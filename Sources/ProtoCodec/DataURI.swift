import NIOCore
package import TriggerModel

/// The `data:<mime>[;filename=<name>];base64,<payload>` strings that carry binaries in Instill JSON and
/// `google.protobuf.Struct` values.
///
/// Decoding: a string that starts with `data:` and whose header (up to the first `,`) ends in `;base64` is a
/// binary. Its MIME type is the first header part (empty means `application/octet-stream`); a `filename`,
/// `fileName`, `file-name` or `name` parameter (as Instill's pipeline-backend writes and reads them) is the
/// file name, percent-decoded. Any other string stays a string. A base64 data URI whose payload is not
/// base64 is an error, not a string: the client plainly meant a binary.
///
/// Encoding: `data:<mime>;base64,<payload>`, with `;filename=<percent-encoded name>` when the blob has one.
///
/// Shared with the REST codec (WireCodecs) so both frontends agree on what is a binary.
package enum DataURI {
    /// Headers longer than this are not data-URI headers; bounds the scan for `,` in long plain strings.
    private static let maxHeaderBytes = 1024

    /// The blob `s` encodes, nil when `s` is not a base64 data URI.
    package static func decode(_ s: String) throws -> Blob? {
        var s = s
        return try s.withUTF8 { try decode(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// As `decode(_:)`, straight from UTF-8 bytes (protobuf-c's C strings), with one pass over the payload.
    static func decode(utf8 bytes: UnsafeRawBufferPointer) throws -> Blob? {
        guard bytes.count >= 5, hasPrefixIgnoringCase(bytes, "data:") else { return nil }
        let headerEnd = min(bytes.count, 5 + maxHeaderBytes)
        guard let comma = bytes[5..<headerEnd].firstIndex(of: UInt8(ascii: ",")) else { return nil }
        let header = UnsafeRawBufferPointer(rebasing: bytes[5..<comma])
        guard let (contentType, fileName) = parseHeader(header) else { return nil }

        let payload = UnsafeRawBufferPointer(rebasing: bytes[(comma + 1)...])
        guard let count = Base64.decodedCount(payload) else {
            throw GatewayError(.invalidArgument, "data URI payload is not valid base64")
        }
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var valid = true
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
            valid = Base64.decode(payload, into: UnsafeMutableRawBufferPointer(rebasing: target[..<count]))
            return count
        }
        guard valid else { throw GatewayError(.invalidArgument, "data URI payload is not valid base64") }
        return Blob(contentType: contentType, fileName: fileName, bytes: buffer)
    }

    /// The data URI for `blob`.
    package static func encode(_ blob: Blob) -> String {
        let header = self.header(for: blob)
        let total = header.utf8.count + Base64.encodedCount(blob.count)
        return String(unsafeUninitializedCapacity: total) { target in
            write(blob, header: header, into: UnsafeMutableRawBufferPointer(target))
        }
    }

    /// The data URI for `blob` as a NUL-terminated C string in `arena`, without an intermediate `String`.
    static func encode(_ blob: Blob, in arena: ProtoArena) -> UnsafeMutablePointer<CChar> {
        let header = self.header(for: blob)
        let total = header.utf8.count + Base64.encodedCount(blob.count)
        let target = arena.array(of: UInt8.self, count: total + 1)!
        let written = write(blob, header: header, into: UnsafeMutableRawBufferPointer(start: target, count: total))
        target[written] = 0
        return UnsafeMutableRawPointer(target).bindMemory(to: CChar.self, capacity: total + 1)
    }

    private static func header(for blob: Blob) -> String {
        if let fileName = blob.fileName, !fileName.isEmpty {
            return "data:\(blob.contentType);filename=\(percentEncode(fileName));base64,"
        }
        return "data:\(blob.contentType);base64,"
    }

    private static func write(_ blob: Blob, header: String, into target: UnsafeMutableRawBufferPointer) -> Int {
        let headerCount = header.utf8.count
        UnsafeMutableRawBufferPointer(rebasing: target[..<headerCount]).copyBytes(from: header.utf8)
        blob.bytes.withUnsafeReadableBytes { source in
            Base64.encode(source, into: UnsafeMutableRawBufferPointer(rebasing: target[headerCount...]))
        }
        return headerCount + Base64.encodedCount(blob.count)
    }

    /// (content type, file name) when the header ends in `;base64` and is printable ASCII.
    private static func parseHeader(_ header: UnsafeRawBufferPointer) -> (String, String?)? {
        guard header.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        let parts = header.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
        guard parts.count >= 2, equalsIgnoringCase(parts[parts.count - 1], "base64") else { return nil }
        let contentType = String(decoding: parts[0], as: UTF8.self)
        var fileName: String?
        for part in parts.dropFirst().dropLast() {
            guard let eq = part.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = part[part.startIndex..<eq]
            if ["filename", "file-name", "name"].contains(where: { equalsIgnoringCase(key, $0) }) {
                fileName = percentDecode(part[(eq + 1)...])
            }
        }
        return (contentType, fileName)
    }

    private static func hasPrefixIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ prefix: String) -> Bool {
        equalsIgnoringCase(bytes.prefix(prefix.utf8.count), prefix)
    }

    private static func equalsIgnoringCase<C: Collection<UInt8>>(_ bytes: C, _ ascii: String) -> Bool {
        bytes.count == ascii.utf8.count && zip(bytes, ascii.utf8).allSatisfy { a, b in a | 0x20 == b | 0x20 }
    }

    /// Keeps RFC 3986 unreserved characters; everything else (notably `;`, `,`, `%`, space) becomes `%XX`.
    private static func percentEncode(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func percentDecode<C: Collection<UInt8>>(_ bytes: C) -> String {
        let bytes = Array(bytes)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]),
                let lo = hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
