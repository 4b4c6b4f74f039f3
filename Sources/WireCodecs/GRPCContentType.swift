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
}
