import Crypto
package import NIOCore
import TriggerModel

/// SHA-256 (swift-crypto) over a `ByteBuffer`'s readable bytes in place, for the `blob-info` pipeline:
/// what a client compares with `sha256sum` of the file it uploaded.
package struct BufferSHA256: Sendable {
    private var hasher = SHA256()

    package init() {}

    /// Adds `buffer`'s readable bytes (its reader index is not moved).
    package mutating func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
    }

    /// The digest as 64 lowercase hex digits.
    package func finalizeHex() -> String {
        hasher.finalize().lowercaseHex
    }

    /// The digest of `buffer`'s readable bytes as 64 lowercase hex digits.
    package static func hexDigest(_ buffer: ByteBuffer) -> String {
        var hasher = BufferSHA256()
        hasher.update(buffer)
        return hasher.finalizeHex()
    }
}
