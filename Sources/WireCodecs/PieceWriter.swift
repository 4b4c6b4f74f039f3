package import NIOCore
import TriggerModel

/// Bytes appended at a raw pointer, piece by piece, inside one ``NIOCore/ByteBuffer/writePieces(atMost:_:)``.
///
/// Why: each `ByteBuffer` write (`writeStaticString`, `writeString`, `writeInteger`) checks uniqueness and
/// capacity and moves the writer index through NIO's exclusivity-checked storage, ~250 instructions a write
/// whatever its length; a response head of a dozen pieces cost ~3 000 (bench/README.md, "Branch hotpath7").
/// Here the checks are paid once per buffer, and each piece is a bounds check and a copy.
package struct PieceWriter: ~Copyable {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    /// Bytes written so far.
    package private(set) var count = 0

    fileprivate init(_ target: UnsafeMutableRawBufferPointer) {
        base = target.baseAddress!
        capacity = target.count
    }

    /// `bytes`, as they are.
    @inline(__always)
    package mutating func write(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= capacity - count, "PieceWriter: more bytes than the bound given")
        if let start = bytes.baseAddress { (base + count).copyMemory(from: start, byteCount: bytes.count) }
        count += bytes.count
    }

    @inline(__always)
    package mutating func write(_ text: StaticString) {
        write(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// `text`'s UTF-8 bytes.
    @inline(__always)
    package mutating func write(_ text: String) {
        text.withUTF8Bytes { write(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    package mutating func write(byte: UInt8) {
        precondition(count < capacity, "PieceWriter: more bytes than the bound given")
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// `value` (≥ 0) in decimal ASCII digits (at most 19 bytes).
    @inline(__always)
    package mutating func write(decimal value: Int) {
        withDecimalDigits(value) { write($0) }
    }
}

extension ByteBuffer {
    /// Appends what `body` writes, at most `bound` (> 0) bytes (more is a precondition failure), in one write.
    @inline(__always)
    package mutating func writePieces(atMost bound: Int, _ body: (inout PieceWriter) -> Void) {
        precondition(bound > 0, "writePieces: a bound of at least one byte")
        writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { target in
            var writer = PieceWriter(UnsafeMutableRawBufferPointer(rebasing: target[..<bound]))
            body(&writer)
            return writer.count
        }
    }
}
