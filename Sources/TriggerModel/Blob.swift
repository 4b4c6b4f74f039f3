package import NIOCore

/// A binary value: a file part, a data-URI string, or a protobuf `bytes` field.
///
/// The bytes are a `ByteBuffer` so that a codec can hand over a slice of what it decoded into without a
/// copy; `ByteBuffer` is copy-on-write and `Sendable`, so a `Blob` moves across tasks freely.
package struct Blob: Sendable, Equatable {
    /// A MIME type such as `image/png`; `application/octet-stream` when the sender gave none.
    package var contentType: String
    /// The file name a multipart part carried, if any.
    package var fileName: String?
    package var bytes: ByteBuffer

    package static let defaultContentType = "application/octet-stream"

    package init(contentType: String = Blob.defaultContentType, fileName: String? = nil, bytes: ByteBuffer) {
        self.contentType = contentType.isEmpty ? Blob.defaultContentType : contentType
        self.fileName = fileName
        self.bytes = bytes
    }

    package var count: Int { bytes.readableBytes }
}
