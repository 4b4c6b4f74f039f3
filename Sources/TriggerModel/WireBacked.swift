import NIOCore
import Synchronization

/// A model part that travels as bytes already in the next hop's form (issue 11: a result's outputs as the
/// client's message, a batch as the runner's `RunRequest` field), with the model decoded by `decode(source)`
/// the first time something reads it, and never again: a class, so that copies of the value holding it share
/// one decode. Internal and used only through non-generic accessors: a generic type reached from other modules
/// is not specialised there (bench/README "Branch grpcpass").
final class WireBacked<Decoded: Sendable>: Sendable {
    /// The bytes to send as they are.
    let wire: ByteBuffer
    /// The bytes `decode` reads (the message `wire` was made from, whose decoder is the reference).
    private let source: ByteBuffer
    private let decode: @Sendable (ByteBuffer) -> Decoded
    private let decoded = Mutex<Decoded?>(nil)

    init(wire: ByteBuffer, source: ByteBuffer, decode: @escaping @Sendable (ByteBuffer) -> Decoded) {
        self.wire = wire
        self.source = source
        self.decode = decode
    }

    var model: Decoded {
        decoded.withLock { decoded in
            if let decoded { return decoded }
            let value = decode(source)
            decoded = value
            return value
        }
    }
}
