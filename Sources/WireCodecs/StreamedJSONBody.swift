package import NIOCore
import TriggerModel

/// A JSON document held as the text around its large blobs plus those blobs' bytes, whose base64 is produced
/// only as the document is sent, one bounded chunk at a time (issue 12).
///
/// Why: a blob of n bytes is 4n/3 bytes of base64 in JSON. Rendering the whole document first holds the blob
/// and its encoding at once (a 32 MiB upload became 75 MiB of peak memory on its way to an http runner) and
/// writes every byte of the encoding to fresh memory before the first one is sent. Here the peak is the blob
/// plus one chunk, and encoding overlaps with the runner reading.
///
/// The bytes `next(maxBytes:)` hands out, concatenated, are exactly what `JSONValueCodec.write` would have
/// written, and `count` is their total (the `Content-Length`), known before the first chunk. The value is
/// re-readable: each send starts from a fresh copy (a retry re-encodes from the blob, it never needs the text).
package struct StreamedJSONBody: Sendable {
    enum Piece: Sendable {
        /// JSON text, sent as it is.
        case text(ByteBuffer)
        /// A blob's bytes, sent as their base64 (no quotes, no header: those are in the text around it).
        case base64(ByteBuffer)
    }

    /// Blobs at least this large are encoded as they are sent; smaller ones are written into the text.
    package static let deferredBlobBytes = 48 << 10

    private var pieces: [Piece]
    private var index = 0
    /// Bytes of the whole document: the text pieces plus the base64 length of each deferred blob.
    package let count: Int

    /// A body that is all text (an empty one for a request without a body).
    package init(_ text: ByteBuffer) {
        self.pieces = text.readableBytes > 0 ? [.text(text)] : []
        self.count = text.readableBytes
    }

    init(pieces: [Piece]) {
        self.pieces = pieces
        self.count = pieces.reduce(0) { sum, piece in
            switch piece {
            case .text(let text): sum + text.readableBytes
            case .base64(let bytes): sum + Base64.encodedLength(bytes.readableBytes)
            }
        }
    }

    /// Renders `write` (a JSON writer taking the blob writer to use) into pieces.
    static func render(_ write: (inout ByteBuffer, inout Builder) -> Void) -> StreamedJSONBody {
        var builder = Builder()
        var text = ByteBufferAllocator().buffer(capacity: 256)
        write(&text, &builder)
        return builder.finish(text)
    }

    /// True once every byte has been handed out.
    package var isFinished: Bool { index == pieces.count }

    /// The next bytes of the document, at most about `maxBytes` of them (a text piece comes whole: a blob
    /// kept as its canonical base64 is such a piece, handed out as the slice it is); nil at the end. Base64 chunks cover a multiple of 3 blob bytes, so they concatenate to the blob's encoding.
    package mutating func next(maxBytes: Int) -> ByteBuffer? {
        guard index < pieces.count else { return nil }
        switch pieces[index] {
        case .text(let text):
            index += 1
            return text
        case .base64(var bytes):
            let take = min(bytes.readableBytes, max(maxBytes / 4, 1) * 3)
            let slice = bytes.readSlice(length: take)!
            var chunk = ByteBufferAllocator().buffer(capacity: Base64.encodedLength(take))
            slice.withUnsafeReadableBytes { Base64.encode($0, into: &chunk) }
            if bytes.readableBytes == 0 {
                index += 1
            } else {
                pieces[index] = .base64(bytes)
            }
            return chunk
        }
    }

    /// The whole document in one buffer (tests, small bodies).
    package func joined() -> ByteBuffer {
        var copy = self
        var out = ByteBufferAllocator().buffer(capacity: count)
        while let chunk = copy.next(maxBytes: 1 << 20) { out.writeImmutableBuffer(chunk) }
        return out
    }

    /// Cuts blobs of `deferredBlobBytes` or more out of the text: the text so far (through the data URI's
    /// header) becomes a piece, the blob another, and the text goes on after it.
    struct Builder: JSONBlobWriter {
        private(set) var pieces: [Piece] = []

        mutating func write(_ blob: Blob, into buffer: inout ByteBuffer) {
            guard blob.count >= StreamedJSONBody.deferredBlobBytes else {
                JSONValueCodec.writeBlob(blob, into: &buffer)
                return
            }
            buffer.writeInteger(UInt8(ascii: "\""))
            buffer.writeBytes(DataURI.header(for: blob))
            pieces.append(.text(buffer))
            if let text = blob.canonicalBase64 {
                // Already the encoding (the client's own text, issue 12): sent as it is, no copy.
                pieces.append(.text(text))
            } else {
                pieces.append(.base64(blob.bytes))
            }
            buffer = ByteBufferAllocator().buffer(capacity: 256)
            buffer.writeInteger(UInt8(ascii: "\""))
        }

        consuming func finish(_ text: ByteBuffer) -> StreamedJSONBody {
            if text.readableBytes > 0 { pieces.append(.text(text)) }
            return StreamedJSONBody(pieces: pieces)
        }
    }
}
