public import NIOCore
import TriggerModel

/// Cuts a gRPC request or response body into messages: the 5-byte prefix (compressed flag, big-endian
/// length) of gRPC PROTOCOL-HTTP2.md "Length-Prefixed-Message", then the message.
///
/// Incremental: feed whatever DATA arrives with `append(_:)` and drain with `next()` until it returns nil.
/// The declared length is checked against `maxMessageBytes` as soon as the prefix is complete, before any
/// of the body is buffered, so an oversized message costs nothing but its 5-byte prefix (STYLE.md habit 10).
/// Returned messages are slices of the received buffers, not copies.
///
/// Compression: `encoding` is the call's `grpc-encoding` (nil for none or `identity`; the caller refuses
/// encodings we do not support, with UNIMPLEMENTED, before any message is read). A message with the
/// compressed flag set is decompressed with it, held to `maxDecompressedBytes` (`limits.max_decompressed_bytes`,
/// at most `maxMessageBytes`) while it inflates: decompression stops one byte past it. Without an
/// encoding such a message is refused with `.internalError`, as gRPC's PROTOCOL-HTTP2.md
/// ("Compressed-Flag": set "when no Message-Encoding is specified ... MUST be treated as a protocol error")
/// and compression.md ("INTERNAL" for a compressed message without `grpc-encoding`) prescribe. A flag value
/// other than 0 or 1 is malformed: `.invalidArgument`. Errors are sticky: after one, `next()` throws it
/// again, so a caller cannot resynchronise on garbage.
public struct GRPCMessageDeframer {
    /// The cap on a message's declared length.
    package var maxMessageBytes: Int { Int(messageCap) }
    /// The most a compressed message may inflate to (at most ``maxMessageBytes``).
    package var maxDecompressedBytes: Int { Int(decompressedCap) }
    /// The two caps, 32 bits each (a `ByteBuffer` holds at most 4 GiB): as two `Int`s the deframer outgrew the
    /// size the frontend's stream state copies inline, and every gRPC call paid a `memcpy` more.
    private let messageCap: UInt32
    private let decompressedCap: UInt32
    /// The call's message encoding; nil is identity.
    package var encoding: GRPCCompression?
    @usableFromInline var buffered: ByteBuffer?
    /// The length of the message whose prefix has been read, while its body is still incomplete.
    @usableFromInline var pendingLength: Int?
    /// Whether the message whose prefix has been read is compressed.
    private var pendingCompressed = false
    /// The sticky failure is a compressed message that inflated past ``maxDecompressedBytes`` (the frontend
    /// counts and logs those apart: `requests_refused_total{reason="decompression"}`).
    package private(set) var exceededDecompressedBytes = false
    /// The sticky failure (a `GatewayError`), held as `any Error`: one reference, so an Optional of it is copied
    /// and destroyed with a retain or release. As `GatewayError?` (a ~70-byte struct) every copy and destroy of
    /// the deframer went through the runtime's generic Optional witnesses, ~300 instructions per gRPC call
    /// (bench/README.md, branch hotpath6).
    private var failure: (any Error)?

    private static let prefixBytes = 5
    /// Consumed bytes at the front of the buffer above which they are dropped before appending.
    private static let compactionThreshold = 64 << 10

    /// - Parameters:
    ///   - maxMessageBytes: the cap on a message's declared (wire) length.
    ///   - maxDecompressedBytes: the cap on a compressed message's inflated length; nil: `maxMessageBytes`. A
    ///     larger value is lowered to `maxMessageBytes`.
    package init(maxMessageBytes: Int, maxDecompressedBytes: Int? = nil, encoding: GRPCCompression? = nil) {
        precondition(maxMessageBytes >= 0, "maxMessageBytes must not be negative")
        messageCap = UInt32(clamping: maxMessageBytes)
        decompressedCap = UInt32(clamping: min(maxDecompressedBytes ?? maxMessageBytes, maxMessageBytes))
        self.encoding = encoding
    }

    /// Adds received bytes. The first buffer is adopted without a copy; later ones are appended.
    package mutating func append(_ buffer: ByteBuffer) {
        guard failure == nil, buffer.readableBytes > 0 else { return }
        if buffered == nil || buffered!.readableBytes == 0 {
            buffered = buffer
        } else {
            // A long stream may never drain the buffer completely (the next message is always partly there);
            // without this, the bytes of every message already handed out would stay in the storage and it
            // would grow with the whole stream.
            if buffered!.readerIndex >= Self.compactionThreshold { buffered!.discardReadBytes() }
            buffered!.writeImmutableBuffer(buffer)
        }
    }

    /// The next complete message, or nil when more bytes are needed.
    ///
    /// Throws `.payloadTooLarge` when a declared length exceeds `maxMessageBytes` or a decompressed one
    /// `maxDecompressedBytes` (then ``exceededDecompressedBytes`` is set), `.internalError` for
    /// a compressed message without an encoding or one that does not decompress, and `.invalidArgument` for
    /// a malformed flag byte.
    package mutating func next() throws -> ByteBuffer? {
        if let failure { throw failure }
        guard var buffer = buffered else { return nil }
        // Own the only reference while mutating, or every read would copy the storage (CoW).
        buffered = nil
        defer { buffered = buffer.readableBytes > 0 ? buffer : nil }

        let length: Int
        if let pendingLength {
            length = pendingLength
        } else {
            guard buffer.readableBytes >= Self.prefixBytes,
                let flag = buffer.readInteger(as: UInt8.self),
                let declared = buffer.readInteger(endianness: .big, as: UInt32.self)
            else { return nil }
            do {
                length = try validatePrefix(flag: flag, declared: declared)
            } catch let error as GatewayError {
                failure = error
                buffer.clear()
                throw error
            }
            pendingLength = length
            pendingCompressed = flag == 1
            // Reserve room for the rest once, so a body arriving in many DATA frames is not regrown each time.
            if buffer.readableBytes < length {
                buffer.reserveCapacity(minimumWritableBytes: length - buffer.readableBytes)
            }
        }
        guard let message = buffer.readSlice(length: length) else { return nil }
        pendingLength = nil
        guard pendingCompressed, let encoding else { return message }
        pendingCompressed = false
        do {
            return try encoding.decompress(message, maxBytes: maxDecompressedBytes)
        } catch {
            exceededDecompressedBytes = Self.isTooLarge(error)
            failure = error
            buffer.clear()
            throw error
        }
    }

    /// True while a message has been started but not completed: at end of stream this means the peer sent a
    /// truncated message (gRPC: INTERNAL / our `.invalidArgument`, the caller decides).
    /// Inlined into the callers (hence `public`: a `package` type's inlinable bodies are not serialised): as a
    /// call, a deframer held in a class's field was copied out for it and destroyed after (~250 instructions
    /// per gRPC call; bench/README.md, "Branch hotpath10").
    @inlinable
    public var hasPartialMessage: Bool {
        pendingLength != nil || (buffered?.readableBytes ?? 0) > 0
    }

    /// The bytes received and held for messages not yet returned. What the frontend counts against the process's
    /// request-buffer budget (with the messages returned): the bytes received, not the declared length of the
    /// message being received (its storage is reserved when its prefix is read, but its untouched pages are not
    /// resident, and a budget counting declared lengths was filled by prefixes alone; see `RequestBufferClaim`).
    @inlinable
    public var heldBytes: Int {
        buffered?.readableBytes ?? 0
    }

    /// Where the bytes of the message being received are gathered (tests: a large message's storage is
    /// reserved once its prefix is read and then never moves; see `BodyGatherer`).
    package var bufferedStorageAddress: UInt? {
        guard let buffered, buffered.readableBytes > 0 else { return nil }
        return buffered.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    private static func isTooLarge(_ error: any Error) -> Bool {
        (error as? GatewayError)?.code == .payloadTooLarge
    }

    private func validatePrefix(flag: UInt8, declared: UInt32) throws -> Int {
        switch flag {
        case 0: break
        case 1 where encoding != nil:
            break
        case 1:
            throw GatewayError(
                .internalError,
                "gRPC message has the compressed flag set, but the call has no grpc-encoding (only identity is supported)"
            )
        default:
            throw GatewayError(.invalidArgument, "invalid gRPC message prefix: compressed flag \(flag)")
        }
        // UInt32 always fits in Int on the 64-bit platforms we build for.
        let length = Int(declared)
        guard length <= maxMessageBytes else {
            throw GatewayError(
                .payloadTooLarge,
                "message of \(length) bytes exceeds the limit of \(maxMessageBytes) bytes"
            )
        }
        return length
    }
}
