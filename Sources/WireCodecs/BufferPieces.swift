package import NIOCore

/// A message's bytes as buffers to send one after the other (`RunnerCodec.encodeRunRequestPieces`,
/// `GRPCMessageFramer.frame(pieces:)`): nearly always one buffer, held without an array; several when a large blob
/// travels as the buffer it arrived in, shared rather than copied (issue 12, `ProtoMessage.packPieces`).
///
/// Why not `[ByteBuffer]`: a one-element array is an allocation, a release and a free on every gRPC backend call
/// for what is one buffer (issue 11). A collection all the same, so callers iterate, count and index it as before.
package struct BufferPieces: RandomAccessCollection, ExpressibleByArrayLiteral, Sendable {
    private enum Storage: Sendable {
        case one(ByteBuffer)
        case many([ByteBuffer])
    }
    private var storage: Storage

    /// One buffer.
    package init(_ buffer: ByteBuffer) {
        storage = .one(buffer)
    }

    /// `buffers` in order (a single one is held alone).
    package init(_ buffers: [ByteBuffer]) {
        storage = buffers.count == 1 ? .one(buffers[0]) : .many(buffers)
    }

    package init(arrayLiteral buffers: ByteBuffer...) {
        self.init(buffers)
    }

    package var startIndex: Int { 0 }

    package var endIndex: Int {
        switch storage {
        case .one: 1
        case .many(let buffers): buffers.count
        }
    }

    // `count` and `isEmpty` of their own: the collection's defaults are generic, called through witnesses from
    // other modules.
    package var count: Int { endIndex }

    package var isEmpty: Bool {
        if case .many(let buffers) = storage { return buffers.isEmpty }
        return false
    }

    package subscript(position: Int) -> ByteBuffer {
        switch storage {
        case .one(let buffer):
            precondition(position == 0, "index \(position) out of range of one piece")
            return buffer
        case .many(let buffers):
            return buffers[position]
        }
    }

    /// `body` with the first buffer in place, nil when there is none. The pieces' own reference is lent to it, not
    /// copied: when they hold the only reference (a fresh encoding), the buffer's storage is unshared in `body`, and
    /// writing into it copies nothing.
    package mutating func withFirst<R>(_ body: (inout ByteBuffer) -> R) -> R? {
        switch storage {
        case .one(var buffer):
            storage = .many([])  // let go of this reference while `body` holds the buffer
            defer { storage = .one(buffer) }
            return body(&buffer)
        case .many(var buffers):
            guard !buffers.isEmpty else { return nil }
            storage = .many([])
            defer { storage = .many(buffers) }
            return body(&buffers[0])
        }
    }

    /// The readable bytes of all the pieces.
    package var readableBytes: Int {
        switch storage {
        case .one(let buffer): buffer.readableBytes
        case .many(let buffers): buffers.reduce(0) { $0 + $1.readableBytes }
        }
    }

    /// `body` for each piece in order, told whether it is the last. Not `Sequence`'s generic iteration: called from
    /// another module, that went through the protocol's witnesses (~300 instructions per gRPC call, issue 11).
    package func forEachPiece(_ body: (_ piece: ByteBuffer, _ isLast: Bool) throws -> Void) rethrows {
        switch storage {
        case .one(let buffer):
            try body(buffer, true)
        case .many(let buffers):
            for index in buffers.indices { try body(buffers[index], index == buffers.count - 1) }
        }
    }

    /// `buffer` put before the pieces.
    package func prepending(_ buffer: ByteBuffer) -> BufferPieces {
        BufferPieces([buffer] + Array(self))
    }

    /// The pieces' bytes in one buffer (a copy unless there is one piece).
    package func joined() -> ByteBuffer {
        if case .one(let buffer) = storage { return buffer }
        return reduce(into: ByteBuffer()) { $0.writeImmutableBuffer($1) }
    }
}
