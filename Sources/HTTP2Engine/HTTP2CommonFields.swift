/// The header names and values that nearly every gRPC and REST exchange carries, returned as string literals
/// when a received field matches one byte for byte, instead of a `String` decoded and validated from the bytes.
///
/// Why (issue 11): a gRPC call through the gateway receives ~14 fields (the client's request, the backend's
/// response headers and trailers); decoding each name and value cost ~150 instructions, and a value over 15
/// bytes (`application/grpc`) a heap allocation as well. A literal costs neither, and its storage is never
/// reference counted. The lookup switches on the length, then compares the bytes with at most a few
/// candidates. Names are matched as nghttp2 delivers them (validated lowercase, RFC 9113 §8.2.1); values
/// exactly (after the engine's whitespace trim), so a literal is only ever the very same text.
enum HTTP2CommonFields {
    /// The literal equal to `bytes`, if `bytes` is a common field name.
    static func name(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        switch bytes.count {
        case 2: return match(bytes, "te", "te")
        case 4: return match(bytes, "date", "date") ?? match(bytes, "host", "host")
        case 5: return match(bytes, ":path", ":path")
        case 6: return match(bytes, "accept", "accept") ?? match(bytes, "server", "server")
        case 7:
            return match(bytes, ":method", ":method") ?? match(bytes, ":scheme", ":scheme")
                ?? match(bytes, ":status", ":status")
        case 10:
            return match(bytes, ":authority", ":authority") ?? match(bytes, "user-agent", "user-agent")
                ?? match(bytes, "request-id", "request-id")
        case 11: return match(bytes, "grpc-status", "grpc-status") ?? match(bytes, "traceparent", "traceparent")
        case 12:
            return match(bytes, "content-type", "content-type") ?? match(bytes, "grpc-message", "grpc-message")
                ?? match(bytes, "grpc-timeout", "grpc-timeout")
        case 13: return match(bytes, "grpc-encoding", "grpc-encoding") ?? match(bytes, "authorization", "authorization")
        case 14: return match(bytes, "content-length", "content-length")
        case 15: return match(bytes, "accept-encoding", "accept-encoding")
        case 20: return match(bytes, "grpc-accept-encoding", "grpc-accept-encoding")
        default: return nil
        }
    }

    /// The literal equal to `bytes`, if `bytes` is a common field value.
    static func value(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        switch bytes.count {
        case 1: return match(bytes, "0", "0")
        case 3: return match(bytes, "200", "200") ?? match(bytes, "GET", "GET") ?? match(bytes, "*/*", "*/*")
        case 4: return match(bytes, "POST", "POST") ?? match(bytes, "http", "http") ?? match(bytes, "gzip", "gzip")
        case 5: return match(bytes, "https", "https")
        case 8: return match(bytes, "trailers", "trailers") ?? match(bytes, "identity", "identity")
        case 16:
            return match(bytes, "application/grpc", "application/grpc")
                ?? match(bytes, "application/json", "application/json")
        case 22: return match(bytes, "application/grpc+proto", "application/grpc+proto")
        default: return nil
        }
    }

    /// For a field named `name` (lowercase, as blocks store them) that carries a value new on every message, its
    /// number among those names (0 `request-id`, 1 `traceparent`, 2 `idempotency-key`: ``HPACKNamePriming``'s
    /// slots); nil for any other name. The engine sends these fields as HPACK "literals never indexed" (RFC 7541
    /// §6.2.3, `NGHTTP2_NV_FLAG_NO_INDEX`) rather than adding them to the dynamic tables of both ends: `request-id`
    /// is made per request when the client sent none, `traceparent` has a new span id on every hop (W3C Trace
    /// Context §3.2.2.4), `idempotency-key` is one per operation. Their names are kept in the tables all the same
    /// (``HPACKNamePriming``).
    ///
    /// Why (issue 11, what a runner pays behind the gateway): indexed, each of these values was copied into the
    /// receiver's table on every call (an allocation, and an eviction once the 4 KiB table is full), and the
    /// ~200 bytes they add per call turned the table over every ~20 calls, evicting the fields that do repeat
    /// (`:authority`, `grpc-timeout`, the principal), which were then sent in full again. Never indexed, they
    /// cost the receiver one literal each and leave the table to the fields that repeat.
    static func uniquePerMessageSlot(_ name: String) -> Int? {
        // Lengths first: nearly every field differs there, and a small string's equality is a word compare.
        switch name.utf8.count {
        case 10: name == "request-id" ? 0 : nil
        case 11: name == "traceparent" ? 1 : nil
        case 15: name == "idempotency-key" ? 2 : nil
        default: nil
        }
    }

    /// `string` when `bytes` (of the literal's length, as the callers' switch guarantees) equals `literal`: the
    /// same text twice, once as bytes to compare with no string machinery, once as the `String` literal to hand
    /// out (making a `String` from a `StaticString` would decode it again, and allocate past 15 bytes).
    @inline(__always)
    private static func match(
        _ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString, _ string: String
    ) -> String? {
        assert(literal.description == string && bytes.count == literal.utf8CodeUnitCount)
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for index in expected.indices where bytes[index] != expected[index] { return nil }
        return string
    }
}
