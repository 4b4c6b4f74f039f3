#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
package import NIOCore

/// The one rule for `data:` URIs (RFC 2397, base64 only) that carry binaries in REST JSON, multipart fields and
/// `google.protobuf.Struct` strings, so that a blob means the same thing over REST and gRPC.
///
/// Form: `data:<media type>[;<parameter>]*[;filename=<name>];base64,<payload>`.
///
/// Decoding: a string that starts with `data:` (any case) whose header (up to the first `,`, which must come
/// within `maxHeaderBytes`) is printable ASCII and ends in `;base64` (any case) is a binary. The first header
/// part is the media type; a `filename`, `file-name` or `name` parameter (any case; Instill writes `fileName`)
/// is the file name (the last one wins); every other parameter stays part of the content type, in order,
/// joined by `;`. Each part is percent-decoded (a `%` not followed by two hex digits is a literal `%`; bytes
/// that are not UTF-8 become U+FFFD). An omitted media type is `text/plain;charset=US-ASCII` (RFC 2397 §2, as
/// Python's `urllib.request` reads `data:;base64,…`); with parameters but no type, `text/plain` plus them (RFC
/// 2397's shorthand `data:;charset=utf-8;base64,…`).
/// Anything else that starts with `data:` stays a string. A base64 data URI whose payload is not base64, or
/// whose media type is not `type/subtype` (RFC 2397 `mediatype`, RFC 9110 §8.3.1: `data:???;base64,…`), is an
/// error, not a string: the client plainly meant a binary.
///
/// Encoding: a content type whose media type is not `type/subtype` (a multipart part's `Content-Type: x`) is
/// written as `application/octet-stream` with its parameters, so that whatever is encoded decodes. Then
/// the content type split at `;` (its parameters, blanks and all), and the file name as a
/// `filename=` parameter (also when empty), each percent-encoded except for token characters, `/` and `=`
/// (and a parameter of the content type that would read as a file name gets its `=` encoded), so that
/// `decode(encode(blob)) == blob` for every blob whose content type is neither empty nor starts with `;`. The
/// header is never longer than `maxHeaderBytes`: when it would be, the file name is shortened (keeping its
/// extension) and, if the content type alone is too long, the content type loses its parameters (or becomes
/// `application/octet-stream`). Only such oversized blobs do not round-trip exactly.
///
/// Decoding only accepts headers whose canonical encoding fits in `maxHeaderBytes`, so whatever decodes
/// re-encodes unshortened: the round trip is exact for every decoded blob.
package enum DataURI {
    /// The longest header (`data:` through the `,`) decoding looks at and encoding writes. Bounds the scan of a
    /// long plain string that merely starts with `data:`.
    package static let maxHeaderBytes = 1024

    /// The content type of a data URI that names none (RFC 2397 §2).
    package static let omittedMediaType = "text/plain;charset=US-ASCII"

    static let scheme = Array("data:".utf8)
    static let marker = Array(";base64".utf8)
    static let fileNameParameter = Array(";filename=".utf8)
    /// Lowercase; matched ignoring ASCII case.
    static let fileNameKeys = ["filename", "file-name", "name"].map { Array($0.utf8) }

    // MARK: Decoding

    /// The blob `text` encodes, nil when `text` is not a base64 data URI.
    ///
    /// - Throws: `Base64.Failure` (offset within the payload) when it is one but its payload is not base64.
    package static func decode(_ text: UnsafeRawBufferPointer) throws(Base64.Failure) -> Blob? {
        guard let header = try parseHeader(text) else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: text[header.payloadOffset...])
        var bytes = ByteBufferAllocator().buffer(capacity: Base64.decodeCapacity(payload.count))
        try Base64.decode(payload, into: &bytes)
        return Blob(contentType: header.contentType, fileName: header.fileName, bytes: bytes)
    }

    /// As `decode(_:)`, with the payload decoded over itself (`Base64.decodeInPlace`): the blob's bytes are
    /// `byteCount` bytes at `payloadOffset` in `text` afterwards. Nil (nothing written) when `text` is not a
    /// base64 data URI.
    ///
    /// - Throws: `Base64.Failure` (offset within the payload) when it is one but its payload is not base64.
    package static func decodeInPlace(
        _ text: UnsafeMutableRawBufferPointer
    ) throws(Base64.Failure) -> (contentType: String, fileName: String?, payloadOffset: Int, byteCount: Int)? {
        guard let header = try parseHeader(UnsafeRawBufferPointer(text)) else { return nil }
        let count = try Base64.decodeInPlace(UnsafeMutableRawBufferPointer(rebasing: text[header.payloadOffset...]))
        return (header.contentType, header.fileName, header.payloadOffset, count)
    }

    /// The header of `text` when it is a base64 data URI whose payload is canonical base64
    /// (`Base64.isCanonical`), checked but not decoded: the blob can be kept as that text
    /// (`Blob(canonicalBase64:)`). Nil when `text` is not a data URI or its payload is anything else (then
    /// `decode` or `decodeInPlace` tells valid from invalid).
    ///
    /// - Parameter checkedAlphabet: addresses of memory already found to be in base64's standard alphabet
    ///   (the streaming relay's check of a body's pieces, `HTTP1BodyRelay`); the part of the payload that lies
    ///   in it from the payload's first byte is not looked at again (`Base64.isCanonical(_:knownStandardAlphabet:)`).
    package static func canonicalBase64Header(
        _ text: UnsafeRawBufferPointer, checkedAlphabet: Range<UInt>? = nil
    ) -> (contentType: String, fileName: String?, payloadOffset: Int)? {
        guard let header = try? parseHeader(text) else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: text[header.payloadOffset...])
        var known = 0
        if let checkedAlphabet, let base = payload.baseAddress {
            let first = UInt(bitPattern: base)
            if checkedAlphabet.lowerBound <= first, first < checkedAlphabet.upperBound {
                known = Int(checkedAlphabet.upperBound - first)
            }
        }
        guard Base64.isCanonical(payload, knownStandardAlphabet: known) else { return nil }
        return header
    }

    /// As `decode(_:)` over a string's UTF-8.
    package static func decode(_ text: String) throws(Base64.Failure) -> Blob? {
        var text = text
        let result = text.withUTF8 { utf8 in
            Result { () throws(Base64.Failure) -> Blob? in try decode(UnsafeRawBufferPointer(utf8)) }
        }
        return try result.get()
    }

    /// As `decode(_:)` over a buffer's readable bytes.
    package static func decode(_ buffer: ByteBuffer) throws(Base64.Failure) -> Blob? {
        let result = buffer.withUnsafeReadableBytes { raw in
            Result { () throws(Base64.Failure) -> Blob? in try decode(raw) }
        }
        return try result.get()
    }

    /// The message for a data URI whose payload (or media type) failed to decode.
    package static func message(for failure: Base64.Failure) -> String {
        guard failure.offset >= 0 else { return "invalid data URI: \(failure.reason)" }
        return "invalid base64 in data URI at payload offset \(failure.offset): \(failure.reason)"
    }

    /// The failure of a data URI whose media type is not `type/subtype`: offset -1, as it is in the header, not
    /// the payload (``message(for:)`` says so).
    static func invalidMediaType(_ type: String) -> Base64.Failure {
        Base64.Failure(
            offset: -1, reason: "media type \"\(type.prefix(64))\" is not type/subtype (RFC 2397, RFC 9110 §8.3.1)")
    }

    /// `type "/" subtype`, each an RFC 9110 §5.6.2 token: what RFC 2397's `mediatype` is.
    package static func isMediaType(_ text: String) -> Bool {
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy(HTTPToken.isToken)
    }

    /// Content type, file name and payload offset of a base64 data URI; nil when `text` is not one.
    ///
    /// - Throws: ``invalidMediaType(_:)`` when it is one but its media type is not `type/subtype`.
    static func parseHeader(
        _ text: UnsafeRawBufferPointer
    ) throws(Base64.Failure) -> (contentType: String, fileName: String?, payloadOffset: Int)? {
        guard text.count >= scheme.count + marker.count + 1 else { return nil }
        for i in 0..<scheme.count where text[i] | (i < 4 ? 0x20 : 0) != scheme[i] { return nil }
        let start = scheme.count
        let limit = min(text.count, maxHeaderBytes)
        guard let found = memchr(text.baseAddress! + start, Int32(UInt8(ascii: ",")), limit - start) else {
            return nil
        }
        let comma = text.baseAddress!.distance(to: UnsafeRawPointer(found))
        let header = UnsafeRawBufferPointer(rebasing: text[start..<comma])
        guard header.count >= marker.count, header.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        let markerStart = header.count - marker.count
        for j in 0..<marker.count where header[markerStart + j] | (j == 0 ? 0 : 0x20) != marker[j] { return nil }

        let parts = UnsafeRawBufferPointer(rebasing: header[..<markerStart])
            .split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
        var contentType = percentDecode(parts[0])
        if !contentType.isEmpty, !isMediaType(contentType) { throw invalidMediaType(contentType) }
        var fileName: String?
        for part in parts.dropFirst() {
            if let eq = part.firstIndex(of: UInt8(ascii: "=")), isFileNameKey(part[..<eq]) {
                fileName = percentDecode(part[(eq + 1)...])
            } else {
                contentType += ";" + percentDecode(part)
            }
        }
        if contentType.isEmpty {
            contentType = Self.omittedMediaType
        } else if contentType.hasPrefix(";") {
            contentType = "text/plain" + contentType
        }
        // A header that would re-encode past the cap is not one we accept: what decodes must re-encode whole.
        guard headerLength(contentType: contentType, fileName: fileName) <= maxHeaderBytes else { return nil }
        return (contentType, fileName, comma + 1)
    }

    static func isFileNameKey<Key: Collection<UInt8>>(_ key: Key) -> Bool {
        fileNameKeys.contains { name in
            key.count == name.count && zip(key, name).allSatisfy { a, b in a | 0x20 == b }
        }
    }

    /// `%XX` becomes its byte; any other `%` stays itself. Bytes that are not UTF-8 become U+FFFD.
    private static func percentDecode(_ bytes: Slice<UnsafeRawBufferPointer>) -> String {
        PercentDecoding.decode(bytes)
    }
}
