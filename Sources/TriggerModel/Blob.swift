package import NIOCore

/// A binary value: a file part, a data-URI string, or a protobuf `bytes` field.
///
/// The bytes are a `ByteBuffer` so that a codec can hand over a slice of what it decoded into without a
/// copy; `ByteBuffer` is copy-on-write and `Sendable`, so a `Blob` moves across tasks freely.
///
/// A blob that arrived as base64 in a JSON body bound for an http runner may be held as that base64 text
/// instead (`init(contentType:fileName:canonicalBase64:)`, issue 12): the runner's JSON wants the same text
/// again, so it is validated but never decoded, and the request to the runner carries the client's text as
/// it is. Only the canonical encoding (RFC 4648 §4 alphabet, padded, unused bits zero: `Base64.isCanonical`)
/// is kept that way, so the text stands for exactly one byte string and re-encoding the bytes would give
/// the same text. `bytes` decodes it on demand (a new buffer each time: read it once where it is needed,
/// e.g. for a grpc runner's protobuf `bytes` or the operation store).
package struct Blob: Sendable, Equatable {
    /// A MIME type such as `image/png`; `application/octet-stream` when the sender gave none.
    package var contentType: String
    /// The file name a multipart part carried, if any.
    package var fileName: String?

    private enum Storage: Sendable {
        case bytes(ByteBuffer)
        /// Canonical base64 text and the number of bytes it encodes.
        case base64(ByteBuffer, byteCount: Int)
    }

    private var storage: Storage

    package static let defaultContentType = "application/octet-stream"

    package init(contentType: String = Blob.defaultContentType, fileName: String? = nil, bytes: ByteBuffer) {
        self.contentType = contentType.isEmpty ? Blob.defaultContentType : contentType
        self.fileName = fileName
        self.storage = .bytes(bytes)
    }

    /// A blob held as its base64 text, which must be canonical (`Base64.isCanonical`; checked in debug builds).
    package init(contentType: String = Blob.defaultContentType, fileName: String? = nil, canonicalBase64: ByteBuffer) {
        assert(canonicalBase64.withUnsafeReadableBytes { Base64.isCanonical($0) }, "not canonical base64")
        self.contentType = contentType.isEmpty ? Blob.defaultContentType : contentType
        self.fileName = fileName
        self.storage = .base64(
            canonicalBase64,
            byteCount: canonicalBase64.withUnsafeReadableBytes { Base64.decodedLength(canonical: $0) }
        )
    }

    /// The blob's bytes; decoded into a new buffer each time for a blob held as base64.
    package var bytes: ByteBuffer {
        get {
            switch storage {
            case .bytes(let bytes):
                return bytes
            case .base64(let text, let byteCount):
                var out = ByteBufferAllocator().buffer(capacity: Base64.decodeCapacity(text.readableBytes))
                text.withUnsafeReadableBytes { raw in
                    // Validated when the blob was made: a failure here is a broken invariant.
                    do { try Base64.decode(raw, into: &out) } catch { preconditionFailure("\(error)") }
                }
                assert(out.readableBytes == byteCount)
                return out
            }
        }
        set { storage = .bytes(newValue) }
    }

    /// The canonical base64 text of the bytes when the blob is held that way (no decoding, no copy); nil for
    /// a blob held as bytes.
    package var canonicalBase64: ByteBuffer? {
        if case .base64(let text, _) = storage { return text }
        return nil
    }

    /// The number of bytes (not of base64 characters).
    package var count: Int {
        switch storage {
        case .bytes(let bytes): bytes.readableBytes
        case .base64(_, let byteCount): byteCount
        }
    }

    package static func == (lhs: Blob, rhs: Blob) -> Bool {
        guard lhs.contentType == rhs.contentType, lhs.fileName == rhs.fileName, lhs.count == rhs.count else {
            return false
        }
        // Canonical base64 is one text per byte string, so two texts compare as their bytes would.
        if let left = lhs.canonicalBase64, let right = rhs.canonicalBase64 { return left == right }
        return lhs.bytes == rhs.bytes
    }
}
