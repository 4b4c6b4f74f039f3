package import NIOCore
package import TriggerModel

/// A JSON document held as the text around its large blobs plus those blobs' bytes, whose base64 is produced
/// only as the document is sent, one bounded chunk at a time (issue 12).
///
/// Why: a blob of n bytes is 4n/3 bytes of base64 in JSON. Rendering the whole document first holds the blob
/// and its encoding at once (a 32 MiB upload became 75 MiB of peak memory on its way to an http runner) and
/// writes every byte of the encoding to fresh memory before the first one is sent. Here the peak is the blob
/// plus one chunk, and encoding overlaps with the runner reading.
///
/// The bytes `next(maxBytes:)` hands out, concatenated, are exactly what `JSONValueCodec.write` would have
/// written, and `count` is their total, known before the first chunk (the `Content-Length` of a request that sends
/// them all after its head; the http transport may send a small all-text body inside the head's buffer instead,
/// `onlyText`). The value is re-readable: each send starts from a fresh copy (a retry re-encodes from the blob, it
/// never needs the text).
package struct StreamedJSONBody: Sendable {
    enum Piece: Sendable {
        /// JSON text, sent as it is.
        case text(ByteBuffer)
        /// A blob's bytes, sent as their base64 (no quotes, no header: those are in the text around it).
        case base64(ByteBuffer)
        /// The whole body, still arriving from the client (the HTTP/1.1 frontend's streaming relay).
        case relayed(RelayedBody)
    }

    /// Blobs at least this large are encoded as they are sent; smaller ones are written into the text.
    package static let deferredBlobBytes = 48 << 10

    private var pieces: [Piece]
    private var index = 0
    /// Set once this copy has claimed its relayed body.
    private var claimed = false
    /// The indices of the pieces that are a blob kept as its canonical base64 text.
    private var blobIndices: [Int] = []
    /// Bytes of the whole document: the text pieces plus the base64 length of each deferred blob.
    package let count: Int

    /// A body that is all text (an empty one for a request without a body).
    package init(_ text: ByteBuffer) {
        self.pieces = text.readableBytes > 0 ? [.text(text)] : []
        self.count = text.readableBytes
    }

    /// A body relayed as it arrives (`TriggerRequest.relayedBody`): its bytes come from `relayed`.
    package init(relayed: RelayedBody) {
        self.pieces = [.relayed(relayed)]
        self.count = relayed.count
    }

    init(pieces: [Piece]) {
        self.pieces = pieces
        self.count = pieces.reduce(0) { sum, piece in
            switch piece {
            case .text(let text): sum + text.readableBytes
            case .base64(let bytes): sum + Base64.encodedLength(bytes.readableBytes)
            case .relayed(let body): sum + body.count
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

    /// Whether the body is relayed from a client as it arrives (`init(relayed:)`).
    package var isRelayed: Bool {
        if case .relayed? = pieces.first { return true }
        return false
    }

    /// The whole document when it is one piece of JSON text not handed out yet (no deferred blob, not relayed):
    /// a caller may send it with something else in one buffer.
    package var onlyText: ByteBuffer? {
        guard index == 0, pieces.count == 1, case .text(let text) = pieces[0] else { return nil }
        return text
    }

    /// No bytes at all, without a buffer to make (`init(ByteBuffer())` needs the caller to allocate one).
    package static var empty: StreamedJSONBody { StreamedJSONBody(pieces: []) }

    /// True once every byte has been handed out.
    package var isFinished: Bool { index == pieces.count }

    /// The next bytes of the document, at most about `maxBytes` of them (a text piece comes whole: a blob
    /// kept as its canonical base64 is such a piece, handed out as the slice it is); nil at the end. Base64 chunks cover a multiple of 3 blob bytes, so they concatenate to the blob's encoding.
    package mutating func next(maxBytes: Int) -> ByteBuffer? {
        guard index < pieces.count else { return nil }
        switch pieces[index] {
        case .relayed:
            preconditionFailure("a relayed body is read with next(maxBytes:whenReady:)")
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

    /// What `next(maxBytes:whenReady:)` hands out.
    package enum Chunk {
        case bytes(ByteBuffer)
        /// A relayed body has nothing more yet: `whenReady` runs (on the producer's thread) when it has.
        case wait
        case end
        /// A relayed body was given up (or sent a second time): the request must be aborted.
        case failed(any Error)
    }

    /// `next(maxBytes:)` for a writer that can wait: a relayed body's bytes as they arrive.
    package mutating func next(maxBytes: Int, whenReady: @escaping @Sendable () -> Void) -> Chunk {
        guard index < pieces.count else { return .end }
        guard case .relayed(let body) = pieces[index] else {
            return next(maxBytes: maxBytes).map(Chunk.bytes) ?? .end
        }
        if !claimed {
            guard body.claim() else { return .failed(RelayedBody.Failure.replayed) }
            claimed = true
        }
        switch body.next(whenReady: whenReady) {
        case .bytes(let bytes): return .bytes(bytes)
        case .wait: return .wait
        case .failed(let error): return .failed(error)
        case .end:
            index += 1
            return .end
        }
    }

    /// The JSON text around the one large blob, and the blob's text, when the document is exactly that: text,
    /// a canonical base64 blob kept as the client's text (`Blob.canonicalBase64`), text. The streaming relay
    /// compares the request it sent ahead with the one the whole body makes (`HTTP1BodyRelay`).
    package var aroundOnlyBlob: (before: ByteBuffer, blob: ByteBuffer, after: ByteBuffer)? {
        guard pieces.count == 3, blobIndices == [1],
            case .text(let before) = pieces[0], case .text(let blob) = pieces[1], case .text(let after) = pieces[2]
        else { return nil }
        return (before, blob, after)
    }

    /// The JSON text around the one large blob, and the blob's bytes, when the document is exactly that: text,
    /// a blob held as bytes (sent as the base64 made while it is sent), text. The streaming relay of a
    /// multipart file compares the request it sent ahead with the one the whole body makes (`HTTP1BodyRelay`).
    package var aroundOnlyBlobBytes: (before: ByteBuffer, blob: ByteBuffer, after: ByteBuffer)? {
        guard pieces.count == 3, blobIndices.isEmpty,
            case .text(let before) = pieces[0], case .base64(let blob) = pieces[1], case .text(let after) = pieces[2]
        else { return nil }
        return (before, blob, after)
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
        private(set) var blobIndices: [Int] = []

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
                blobIndices.append(pieces.count)
                pieces.append(.text(text))
            } else {
                pieces.append(.base64(blob.bytes))
            }
            buffer = ByteBufferAllocator().buffer(capacity: 256)
            buffer.writeInteger(UInt8(ascii: "\""))
        }

        consuming func finish(_ text: ByteBuffer) -> StreamedJSONBody {
            if text.readableBytes > 0 { pieces.append(.text(text)) }
            var body = StreamedJSONBody(pieces: pieces)
            body.blobIndices = blobIndices
            return body
        }
    }
}
