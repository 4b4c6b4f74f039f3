import TriggerModel

/// Which requests are gRPC, by `content-type` (gRPC PROTOCOL-HTTP2.md "Requests":
/// `Content-Type → "content-type" "application/grpc" [("+proto" / "+json" / {custom})]`).
///
/// Only `application/grpc` and `application/grpc+<codec>` are gRPC (media types are case-insensitive,
/// RFC 9110 §8.3.1, and parameters do not change the type). Look-alikes such as
/// `application/grpc-web+proto` (gRPC-Web carries its trailers in the body, which a gRPC answer does not)
/// or `application/grpcx` are not: answering them in gRPC framing would give their clients bytes they
/// cannot read, so they are refused as HTTP with 415.
package enum GRPCContentType: Equatable, Sendable {
    /// gRPC; `codec` is the part after `+`, lowercased (`proto` when absent).
    case grpc(codec: String)
    /// A type that starts like gRPC's but is not it (gRPC-Web, `application/grpcx`, ...).
    case lookalike(String)
    /// Anything else, or no header.
    case other

    package init(header: String?) {
        guard let header else {
            self = .other
            return
        }
        // What gRPC clients send, answered without parsing (this runs for every call).
        if header == "application/grpc" {
            self = .grpc(codec: "proto")
            return
        }
        // Every other type (REST's `application/json`, each REST call) is told apart by its first bytes, without
        // parsing: the parsed type is the header's first token, trimmed and lowercased, so a header that does not
        // start with "application/grpc" in any case, after blanks, cannot have a type that does (~600 instructions
        // per REST call, issue 11).
        guard Self.mayStartWithGRPC(header) else {
            self = .other
            return
        }
        let type = MediaType.parse(header).type
        let base = "application/grpc"
        guard type.hasPrefix(base) else {
            self = .other
            return
        }
        if type == base {
            self = .grpc(codec: "proto")
        } else if type.utf8.count > base.utf8.count + 1, type.dropFirst(base.count).first == "+" {
            self = .grpc(codec: String(type.dropFirst(base.count + 1)))
        } else {
            self = .lookalike(type)
        }
    }

    /// Whether `header`, past leading spaces and tabs, starts with "application/grpc" in any case.
    private static func mayStartWithGRPC(_ header: String) -> Bool {
        return header.withUTF8Bytes { bytes in
            var index = 0
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            let prefix = grpcPrefix.utf8Start
            let length = grpcPrefix.utf8CodeUnitCount
            guard bytes.count - index >= length else { return false }
            for offset in 0..<length {
                let byte = bytes[index &+ offset]
                // ASCII letters lowercased; every other byte (digits, '/') compared as is.
                let lowered = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
                if lowered != prefix[offset] { return false }
            }
            return true
        }
    }

    private static var grpcPrefix: StaticString { "application/grpc" }
}
