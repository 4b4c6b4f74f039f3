/// The header fields that answer a gRPC call (gRPC PROTOCOL-HTTP2.md "Responses"): one definition for every
/// gRPC server in the package — the gateway's frontend and the demo runner's server — so both answer alike.
///
/// A call is answered with Response-Headers, messages, then Trailers; or, when it fails before any message,
/// with Trailers-Only: one HEADERS frame with END_STREAM holding both the response headers and the status.
package enum GRPCResponseFields {
    /// The longest `grpc-message` sent, in UTF-8 bytes before percent-encoding. Peers cap header lists (ours at
    /// 16 KiB) and reset a stream whose trailers exceed the cap, which would turn a clear error into an opaque
    /// reset; percent-encoding can triple the size. Longer messages are cut to a quarter of it and end in "…".
    package static let maxStatusMessageBytes = 4096

    /// Response-Headers: `:status: 200`, `content-type: application/grpc`, and with a message `encoding`
    /// (compression) its `grpc-encoding` and the encodings we accept (`grpc-accept-encoding`).
    package static func headers(encoding: GRPCCompression? = nil) -> [(String, String)] {
        var fields = [(":status", "200"), ("content-type", "application/grpc")]
        if let encoding {
            fields.append(("grpc-encoding", encoding.rawValue))
            fields.append(("grpc-accept-encoding", GRPCCompression.acceptEncoding))
        }
        return fields
    }

    /// Trailers: `grpc-status` (`code`, 0 for OK) and, when `message` is not empty, `grpc-message`
    /// (percent-encoded; cut at ``maxStatusMessageBytes``).
    package static func status(code: Int, message: String?) -> [(String, String)] {
        var fields = [("grpc-status", String(code))]
        if let message, !message.isEmpty {
            let cut =
                message.utf8.count > maxStatusMessageBytes
                ? String(message.prefix(maxStatusMessageBytes / 4)) + "…" : message
            fields.append(("grpc-message", GRPCStatusMessage.percentEncode(cut)))
        }
        return fields
    }

    /// Trailers-Only: the response headers, `extra` fields (e.g. `grpc-accept-encoding` with UNIMPLEMENTED for
    /// an unsupported encoding), then the status.
    package static func trailersOnly(code: Int, message: String?, extra: [(String, String)] = []) -> [(String, String)]
    {
        headers() + extra + status(code: code, message: message)
    }
}
