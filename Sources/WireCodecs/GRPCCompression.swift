import CZlib
package import NIOCore
package import TriggerModel

/// gRPC message compression (gRPC compression.md): the `gzip` (RFC 1952) and `deflate` (zlib, RFC 1950)
/// message encodings that grpc-go, grpc-java, grpcio and Envoy speak, over zlib.
///
/// Each call owns its `z_stream` for the length of one message and frees it before returning
/// (`inflateEnd` / `deflateEnd` in a `defer`), so no zlib state outlives a call or crosses threads.
/// Decompression stops as soon as the output passes `maxBytes`: a small compressed message cannot make the
/// gateway allocate more than the cap plus one output chunk (the zip-bomb rule of STYLE.md habit 10).
package enum GRPCCompression: String, Sendable {
    case gzip
    case deflate

    /// What `grpc-accept-encoding` lists: every encoding we read, identity included.
    package static let acceptEncoding = "identity, deflate, gzip"

    /// zlib's `windowBits`: 15 is the zlib wrapper, +16 the gzip one.
    private var windowBits: Int32 { self == .gzip ? 15 + 16 : 15 }

    /// The decompressed message.
    ///
    /// - Throws: `GatewayError(.payloadTooLarge)` when it exceeds `maxBytes` (gRPC: RESOURCE_EXHAUSTED);
    ///   `GatewayError(.internalError)` when the bytes are not a complete stream of this encoding (gRPC
    ///   compression.md: a message that cannot be decompressed is INTERNAL).
    package func decompress(_ message: ByteBuffer, maxBytes: Int) throws(GatewayError) -> ByteBuffer {
        var stream = z_stream()
        // Returns Z_OK, or Z_MEM_ERROR / Z_VERSION_ERROR / Z_STREAM_ERROR: allocation or build errors.
        let initialised = CZlib_inflateInit2(&stream, windowBits)
        precondition(initialised == Z_OK, "inflateInit2 failed: \(initialised)")
        defer { inflateEnd(&stream) }

        // One byte past the cap is enough to know a message is over it.
        let limit = maxBytes < Int.max ? maxBytes + 1 : Int.max
        var output = ByteBufferAllocator().buffer(capacity: min(limit, max(256, message.readableBytes * 4)))
        let outcome: Int32 = message.withUnsafeReadableBytes { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                let room = limit - output.writerIndex
                if room <= 0 { return Z_BUF_ERROR }
                if output.writableBytes == 0 {
                    output.reserveCapacity(minimumWritableBytes: min(room, max(4096, output.capacity)))
                }
                var rc = Z_OK
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { out in
                    let usable = min(out.count, room)
                    stream.next_out = out.bindMemory(to: Bytef.self).baseAddress
                    stream.avail_out = uInt(usable)
                    // Returns Z_OK (progress), Z_STREAM_END, Z_BUF_ERROR (no progress possible),
                    // Z_NEED_DICT / Z_DATA_ERROR (not this encoding), Z_MEM_ERROR.
                    rc = inflate(&stream, Z_NO_FLUSH)
                    return usable - Int(stream.avail_out)
                }
                switch rc {
                case Z_OK: continue
                case Z_BUF_ERROR where stream.avail_in > 0 && stream.avail_out == 0: continue
                default: return rc
                }
            }
        }
        // The borrowed input and output views end with their closures: poison them so nothing after this
        // point (only `inflateEnd`, which does not read them) could follow a dangling pointer.
        stream.next_in = nil
        stream.next_out = nil
        switch outcome {
        case Z_STREAM_END where output.readableBytes <= maxBytes:
            guard stream.avail_in == 0 else {
                throw GatewayError(.internalError, "\(rawValue)-compressed gRPC message has bytes after its end")
            }
            return output
        case Z_STREAM_END:
            throw Self.tooLarge(maxBytes)
        case Z_BUF_ERROR where output.writerIndex > maxBytes:
            throw Self.tooLarge(maxBytes)
        case Z_BUF_ERROR:
            throw GatewayError(.internalError, "\(rawValue)-compressed gRPC message is truncated")
        case Z_MEM_ERROR:
            preconditionFailure("zlib ran out of memory")
        default:
            throw GatewayError(.internalError, "gRPC message is not valid \(rawValue) data (zlib error \(outcome))")
        }
    }

    private static func tooLarge(_ maxBytes: Int) -> GatewayError {
        GatewayError(
            .payloadTooLarge,
            "decompressed message exceeds the limit of \(maxBytes) bytes (limits.max_decompressed_bytes)")
    }

    /// The compressed message (zlib's default level).
    package func compress(_ message: ByteBuffer) -> ByteBuffer {
        var stream = z_stream()
        // Returns Z_OK, or Z_MEM_ERROR / Z_STREAM_ERROR / Z_VERSION_ERROR: allocation or build errors.
        let initialised = CZlib_deflateInit2(&stream, Z_DEFAULT_COMPRESSION, windowBits)
        precondition(initialised == Z_OK, "deflateInit2 failed: \(initialised)")
        defer { deflateEnd(&stream) }
        // deflateBound is an upper bound for one deflate(Z_FINISH) call, so one call always finishes.
        let bound = Int(deflateBound(&stream, uLong(message.readableBytes)))
        var output = ByteBufferAllocator().buffer(capacity: bound)
        message.withUnsafeReadableBytes { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                stream.next_out = out.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = uInt(out.count)
                // Returns Z_STREAM_END with room of at least deflateBound; anything else is a zlib bug.
                let rc = CZlib.deflate(&stream, Z_FINISH)
                precondition(rc == Z_STREAM_END, "deflate(Z_FINISH) with deflateBound room returned \(rc)")
                return out.count - Int(stream.avail_out)
            }
        }
        stream.next_in = nil  // borrowed views, ended with their closures (see `decompress`)
        stream.next_out = nil
        return output
    }

    /// The encoding to answer a call with: the one its request used, when the client also says it accepts
    /// it (gRPC compression.md lets the server pick any the client accepts; mirroring the request's is what
    /// grpc-go does). Without a `grpc-accept-encoding` the request's own encoding is taken as accepted (the
    /// client that compressed with it can read it); README says the same. Nil: identity.
    package static func responseEncoding(request: GRPCCompression?, acceptEncoding: String?) -> GRPCCompression? {
        guard let request else { return nil }
        guard let acceptEncoding else { return request }
        let accepted = acceptEncoding.split(separator: ",").map { $0.filter { $0 != " " && $0 != "\t" } }
        return accepted.contains { $0 == request.rawValue } ? request : nil
    }
}
