package import NIOCore

extension DataURI {
    /// The header (`data:` through `,`) for `blob`: its content type and file name percent-encoded so that
    /// `decode` gives them back, shortened as the type's documentation says when it would exceed
    /// `maxHeaderBytes`.
    package static func header(for blob: Blob) -> [UInt8] {
        var contentType = encodable(blob.contentType)
        var fileName = blob.fileName
        if headerLength(contentType: contentType, fileName: fileName) > maxHeaderBytes {
            let parameterRoom = fileName == nil ? 0 : fileNameParameter.count
            if headerLength(contentType: contentType, fileName: nil) + parameterRoom > maxHeaderBytes {
                let mediaType = String(decoding: contentType.utf8.prefix { $0 != UInt8(ascii: ";") }, as: UTF8.self)
                let fits =
                    !mediaType.isEmpty
                    && headerLength(contentType: mediaType, fileName: nil) + parameterRoom <= maxHeaderBytes
                contentType = fits ? mediaType : Blob.defaultContentType
            }
            if let name = fileName {
                let room = maxHeaderBytes - headerLength(contentType: contentType, fileName: nil) - parameterRoom
                fileName = shortened(name, toEncodedLength: room)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(headerLength(contentType: contentType, fileName: fileName))
        forEachHeaderByte(contentType: contentType, fileName: fileName) { out.append($0) }
        return out
    }

    /// `contentType` with a media type that decoding accepts: as it is when its media type (before the first
    /// `;`) is empty or `type/subtype`, else `application/octet-stream` with the same parameters.
    static func encodable(_ contentType: String) -> String {
        let mediaType = contentType.utf8.prefix { $0 != UInt8(ascii: ";") }
        if mediaType.isEmpty || isMediaType(String(Substring(mediaType))) { return contentType }
        return Blob.defaultContentType + String(Substring(contentType.utf8.dropFirst(mediaType.count)))
    }

    /// Appends the data URI for `blob` (header, then the base64 payload) to `buffer`.
    package static func encode(_ blob: Blob, into buffer: inout ByteBuffer) {
        buffer.writeBytes(header(for: blob))
        if let text = blob.canonicalBase64 {
            buffer.writeImmutableBuffer(text)  // the same text `encode` would write
        } else {
            blob.bytes.withUnsafeReadableBytes { Base64.encode($0, into: &buffer) }
        }
    }

    /// The data URI for `blob` as a string (tests, fuzzing, small values; the codecs write into buffers).
    package static func encode(_ blob: Blob) -> String {
        let header = header(for: blob)
        let total = header.count + Base64.encodedLength(blob.count)
        return String(unsafeUninitializedCapacity: total) { target in
            write(blob, header: header, into: UnsafeMutableRawBufferPointer(target))
        }
    }

    /// Writes `header` (from `header(for: blob)`) and the base64 payload to the start of `target`, which must
    /// hold `header.count + Base64.encodedLength(blob.count)` bytes; returns that count.
    @discardableResult
    package static func write(_ blob: Blob, header: [UInt8], into target: UnsafeMutableRawBufferPointer) -> Int {
        UnsafeMutableRawBufferPointer(rebasing: target[..<header.count]).copyBytes(from: header)
        if let text = blob.canonicalBase64 {
            text.withUnsafeReadableBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: target[header.count...]).copyMemory(from: source)
            }
            return header.count + text.readableBytes
        }
        let payload = blob.bytes.withUnsafeReadableBytes { source in
            Base64.encode(source, into: UnsafeMutableRawBufferPointer(rebasing: target[header.count...]))
        }
        return header.count + payload
    }

    /// The length of the unshortened header for these values.
    static func headerLength(contentType: String, fileName: String?) -> Int {
        var count = 0
        forEachHeaderByte(contentType: contentType, fileName: fileName) { _ in count += 1 }
        return count
    }

    /// The one place that spells a header, for both `header(for:)` and `headerLength`.
    private static func forEachHeaderByte(contentType: String, fileName: String?, _ emit: (UInt8) -> Void) {
        for byte in scheme { emit(byte) }
        let segments = contentType.utf8.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
        for (k, segment) in segments.enumerated() {
            if k > 0 { emit(UInt8(ascii: ";")) }
            // A parameter such as `name=x` in the content type must not come back as the file name.
            var guarded: String.UTF8View.Index?
            if k > 0, let eq = segment.firstIndex(of: UInt8(ascii: "=")), isFileNameKey(segment[..<eq]) {
                guarded = eq
            }
            for index in segment.indices {
                if index == guarded {
                    percentEncode(segment[index], emit)
                } else {
                    encode(segment[index], emit)
                }
            }
        }
        if let fileName {
            for byte in fileNameParameter { emit(byte) }
            for byte in fileName.utf8 { encode(byte, emit) }
        }
        for byte in marker { emit(byte) }
        emit(UInt8(ascii: ","))
    }

    @inline(__always)
    private static func encode(_ byte: UInt8, _ emit: (UInt8) -> Void) {
        if isSafe(byte) { emit(byte) } else { percentEncode(byte, emit) }
    }

    private static func percentEncode(_ byte: UInt8, _ emit: (UInt8) -> Void) {
        let hex: StaticString = "0123456789ABCDEF"
        emit(UInt8(ascii: "%"))
        emit(hex.utf8Start[Int(byte >> 4)])
        emit(hex.utf8Start[Int(byte & 0xF)])
    }

    /// RFC 9110 token characters, `/` and `=`: all a media type with plain parameters needs, and nothing that
    /// the header syntax (`;`, `,`, `%`), JSON (`"`, `\`) or a blank would trip over.
    private static func isSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"),
            UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"), UInt8(ascii: "/"),
            UInt8(ascii: "="):
            true
        default:
            false
        }
    }

    /// `name` cut to at most `room` encoded bytes at a Unicode scalar boundary, keeping a short extension.
    static func shortened(_ name: String, toEncodedLength room: Int) -> String {
        func length(_ scalars: some Sequence<Unicode.Scalar>) -> Int {
            scalars.reduce(0) { sum, scalar in sum + String(scalar).utf8.reduce(0) { $0 + (isSafe($1) ? 1 : 3) } }
        }
        guard room > 0 else { return "" }
        let scalars = Array(name.unicodeScalars)
        var stemEnd = scalars.endIndex
        var extensionLength = 0
        if let dot = scalars.lastIndex(of: "."), dot > 0 {
            let candidate = length(scalars[dot...])
            if candidate <= min(32, room / 2) {
                stemEnd = dot
                extensionLength = candidate
            }
        }
        var budget = room - extensionLength
        var kept = String.UnicodeScalarView()
        for scalar in scalars[..<stemEnd] {
            let cost = length(CollectionOfOne(scalar))
            guard cost <= budget else { break }
            budget -= cost
            kept.append(scalar)
        }
        kept.append(contentsOf: scalars[stemEnd...])
        return String(kept)
    }
}
