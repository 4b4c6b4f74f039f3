import NIOCore
import TriggerModel

/// Recognises the `data:<mime>[;params];base64,` prefix of an RFC 2397 data URI over raw bytes, and renders one
/// for a blob. Only base64 data URIs are binaries; anything else that starts with `data:` stays a string.
enum DataURI {
    /// The longest media type (with parameters) a data URI may carry before we stop treating it as one; keeps the
    /// header scan of a string that merely starts with `data:` short.
    static let maxMediaTypeBytes = 1024

    /// For bytes that start with `data:`, the declared media type (parameters included, verbatim) and the offset
    /// of the base64 payload; nil when the bytes are not a base64 data URI.
    static func header(_ bytes: UnsafeRawBufferPointer) -> (contentType: String, payloadOffset: Int)? {
        let prefix: [UInt8] = Array("data:".utf8)
        guard bytes.count >= prefix.count + 7 else { return nil }
        for i in 0..<prefix.count where bytes[i] | (i < 4 ? 0x20 : 0) != prefix[i] { return nil }
        let limit = min(bytes.count, prefix.count + maxMediaTypeBytes + 7)
        var comma = -1
        for i in prefix.count..<limit {
            let c = bytes[i]
            if c == UInt8(ascii: ",") {
                comma = i
                break
            }
            // Printable ASCII without quote or backslash: a media type has no room for anything else.
            if c <= 0x20 || c >= 0x7F || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { return nil }
        }
        let marker = Array(";base64".utf8)
        guard comma >= prefix.count + marker.count else { return nil }
        let typeEnd = comma - marker.count
        for j in 0..<marker.count where bytes[typeEnd + j] | (j == 0 ? 0 : 0x20) != marker[j] { return nil }
        let type = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[prefix.count..<typeEnd]), as: UTF8.self)
        if !type.isEmpty {
            // `type/subtype` at least; a bare word is more likely prose than a media type.
            let main = type.prefix { $0 != ";" }
            guard let slash = main.firstIndex(of: "/"), slash != main.startIndex,
                main.index(after: slash) != main.endIndex
            else { return nil }
        }
        return (type, comma + 1)
    }

    /// A blob for a complete base64 data URI, nil if `text` is not one.
    ///
    /// - Throws: `Base64Codec.Failure` when it is a data URI whose payload is not base64.
    static func decodeBlob(_ text: UnsafeRawBufferPointer) throws(Base64Codec.Failure) -> Blob? {
        guard let header = header(text) else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: text[header.payloadOffset...])
        var buffer = ByteBufferAllocator().buffer(capacity: payload.count / 4 * 3 + 3)
        do {
            try Base64Codec.decode(payload, into: &buffer)
        } catch let failure as Base64Codec.Failure {
            throw failure
        } catch {
            throw Base64Codec.Failure(offset: 0, reason: "\(error)")
        }
        return Blob(contentType: header.contentType, bytes: buffer)
    }

    /// The message for a data URI whose payload failed to decode.
    static func message(for failure: Base64Codec.Failure) -> String {
        "invalid base64 in data URI at payload offset \(failure.offset): \(failure.reason)"
    }

    /// The media type to put in a data URI for `contentType`: verbatim when it is URI-safe, else its
    /// `type/subtype` without blanks, else `application/octet-stream`.
    static func mediaType(for contentType: String) -> String {
        if isSafe(contentType) { return contentType }
        let stripped = String(contentType.unicodeScalars.filter { $0 != " " && $0 != "\t" })
        if isSafe(stripped) { return stripped }
        let main = String(stripped.prefix { $0 != ";" })
        return isSafe(main) && main.contains("/") ? main : "application/octet-stream"
    }

    private static func isSafe(_ s: String) -> Bool {
        s.utf8.allSatisfy { c in
            c > 0x20 && c < 0x7F && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") && c != UInt8(ascii: ",")
        }
    }
}
