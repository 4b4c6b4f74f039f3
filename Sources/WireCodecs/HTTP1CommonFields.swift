/// The field names and values that nearly every HTTP/1.1 REST request carries, returned as string literals when a
/// received field matches one, instead of a `String` made and validated from the head's bytes: what
/// ``HTTP1RequestHead/lowercasedFields`` hands the REST frontend.
///
/// Why (issue 11): each field of a REST request cost ~230 instructions for its lowercased name and ~220 for its
/// value (`String(unsafeUninitializedCapacity:)` / `String(decoding:)`: building and validating, and a heap
/// allocation past 15 bytes, `application/json`), ~2.2 k per REST call for a four-field request (bench/README.md,
/// "Branch hotpath11"). A literal costs neither, and its storage is never reference counted. The HTTP/2 engine does
/// the same for the fields nghttp2 delivers (`HTTP2CommonFields`, in the HTTP2Engine module, which this module
/// does not depend on); this table differs in two ways: HTTP/1.1 names are case-insensitive (RFC 9110 §5.1), so a
/// name is matched folded to lowercase, and its lists are the fields of HTTP/1.1 requests (no pseudo-headers or
/// gRPC fields).
///
/// The lookup switches on the length, then compares the bytes with at most a few candidates.
package enum HTTP1CommonFields {
    /// The lowercase literal equal to `name` folded to lowercase, if `name` is a common field name.
    ///
    /// `name` must be a token (RFC 9110 §5.6.2 `tchar`, as the head parser has checked every field name): folding
    /// is `byte | 0x20`, which for a `tchar` byte gives a lowercase letter or `-` only when the byte is that
    /// letter in either case or `-` itself (the other byte that folds to `-`, 0x0D, is no `tchar`), so a match is
    /// exact.
    package static func name(_ name: UnsafeRawBufferPointer) -> String? {
        switch name.count {
        case 4: return match(name, "host", "host")
        case 6:
            return match(name, "accept", "accept") ?? match(name, "cookie", "cookie")
                ?? match(name, "expect", "expect")
        case 10:
            return match(name, "user-agent", "user-agent") ?? match(name, "request-id", "request-id")
                ?? match(name, "connection", "connection") ?? match(name, "keep-alive", "keep-alive")
        case 11: return match(name, "traceparent", "traceparent")
        case 12: return match(name, "content-type", "content-type")
        case 13: return match(name, "authorization", "authorization") ?? match(name, "cache-control", "cache-control")
        case 14: return match(name, "content-length", "content-length")
        case 15:
            return match(name, "accept-encoding", "accept-encoding")
                ?? match(name, "accept-language", "accept-language")
                ?? match(name, "idempotency-key", "idempotency-key")
                ?? match(name, "x-forwarded-for", "x-forwarded-for")
        case 17:
            return match(name, "transfer-encoding", "transfer-encoding")
                ?? match(name, "x-forwarded-proto", "x-forwarded-proto")
        default: return nil
        }
    }

    /// The literal equal to `value` byte for byte (values are case-sensitive as sent), if `value` is a common
    /// field value.
    package static func value(_ value: UnsafeRawBufferPointer) -> String? {
        switch value.count {
        case 3: return match(value, "*/*", "*/*", folding: false)
        case 4: return match(value, "gzip", "gzip", folding: false)
        case 5: return match(value, "close", "close", folding: false)
        case 7: return match(value, "chunked", "chunked", folding: false)
        case 10: return match(value, "keep-alive", "keep-alive", folding: false)
        case 12: return match(value, "100-continue", "100-continue", folding: false)
        case 16: return match(value, "application/json", "application/json", folding: false)
        case 17: return match(value, "gzip, deflate, br", "gzip, deflate, br", folding: false)
        case 24: return match(value, "application/octet-stream", "application/octet-stream", folding: false)
        case 31:
            return match(value, "application/json; charset=utf-8", "application/json; charset=utf-8", folding: false)
        default: return nil
        }
    }

    /// The literal equal to `method` byte for byte (methods are case-sensitive, RFC 9110 §9.1), if it is one of
    /// RFC 9110's methods a REST client sends: the request's method string, made per request from the bytes,
    /// cost ~140 instructions (issue 11).
    package static func method(_ method: UnsafeRawBufferPointer) -> String? {
        switch method.count {
        case 3: return match(method, "GET", "GET", folding: false) ?? match(method, "PUT", "PUT", folding: false)
        case 4: return match(method, "POST", "POST", folding: false) ?? match(method, "HEAD", "HEAD", folding: false)
        case 5: return match(method, "PATCH", "PATCH", folding: false)
        case 6: return match(method, "DELETE", "DELETE", folding: false)
        case 7: return match(method, "OPTIONS", "OPTIONS", folding: false)
        default: return nil
        }
    }

    /// `string` when `bytes` (of the literal's length, as the callers' switch guarantees) equals `literal`, each
    /// byte folded to lowercase first when `folding` (see ``name(_:)`` for why that is exact on a token): the same
    /// text twice, once as bytes to compare with no string machinery, once as the `String` literal to hand out
    /// (making a `String` from a `StaticString` would decode it again, and allocate past 15 bytes).
    @inline(__always)
    private static func match(
        _ bytes: UnsafeRawBufferPointer, _ literal: StaticString, _ string: String, folding: Bool = true
    ) -> String? {
        assert(literal.description == string && bytes.count == literal.utf8CodeUnitCount)
        let fold: UInt8 = folding ? 0x20 : 0
        let expected = literal.utf8Start
        for index in 0..<bytes.count where bytes[index] | fold != expected[index] { return nil }
        return string
    }
}
