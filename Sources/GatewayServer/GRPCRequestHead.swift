import HTTP2Engine

/// The fields a gRPC call's header block is read for, picked out in one pass over the block.
///
/// Why one pass: the call reads thirteen fields, most of which clients do not send (`grpc-timeout`,
/// `grpc-encoding`, `idempotency-key`, `instill-return-traces`, …), and each `HTTP2Headers.first(name:)` of an
/// absent field visits every field of the block: ~2.4 k instructions per call (bench/callgrind, issue 11).
/// Here each field is visited once and compared only with the wanted names of its length.
///
/// Received names are lowercase (RFC 9113 §8.2.1: libnghttp2 refuses a block with an uppercase name), so
/// names are compared exactly; as with `first(name:)`, the first of repeated fields wins, except that a repeated
/// `authorization` or `content-type` is named (``repeatedSingleton``) for the call to be refused
/// (``RequestFieldRules``).
struct GRPCRequestHead {
    var path: String?
    var method: String?
    var requestID: String?
    var authorization: String?
    /// A singleton field the block has more than once (`Authorization`, `Content-Type`): the call is refused
    /// (``RequestFieldRules``).
    var repeatedSingleton: String?
    /// `instill-requester-uid`.
    var requesterUID: String?
    var timeout: String?
    var encoding: String?
    var acceptEncoding: String?
    var traceParent: String?
    var traceState: String?
    var idempotencyKey: String?
    /// `instill-return-traces`, as sent.
    var returnTraces: String?
    /// `user-agent` (gRPC's own form: `grpc-python/1.76.0 grpc-c/51.0.0 (linux; chttp2)`), for the access log.
    var userAgent: String?
}

extension GRPCRequestHead {
    init(_ headers: HTTP2Headers) {
        // Read into locals and built by the memberwise initializer at the end: filled in place, `self` (fourteen
        // optional strings) was assembled in a local, copied out and the local destroyed (bench/README.md,
        // "Branch hotpath2"). Nor are the locals captured by a closure, nor `self` mutated after the initializer:
        // with both, the compiler still built the struct in a temporary and copied it out (issue 11: fourteen
        // retains and releases per gRPC call; both went in one change, so which of the two caused the copy is not
        // known: bench/README.md, "Thirty-fifth session").
        var path: String?, method: String?, requestID: String?, authorization: String?, requesterUID: String?,
            timeout: String?, encoding: String?, acceptEncoding: String?, traceParent: String?, traceState: String?,
            idempotencyKey: String?, returnTraces: String?, userAgent: String?
        var repeatedSingleton: String?
        var contentTypeSeen = false
        // By index: iterating the fields would copy each (a retain and release of both strings).
        do {
            let fields = headers.fields
            for index in fields.indices {
                let name = fields[index].name
                switch name.utf8.count {
                case 5:
                    if name == ":path" { Self.keepFirst(&path, fields[index].value) }
                case 7:
                    if name == ":method" { Self.keepFirst(&method, fields[index].value) }
                case 10:
                    if name == "request-id" {
                        Self.keepFirst(&requestID, fields[index].value)
                    } else if name == "tracestate" {
                        Self.keepFirst(&traceState, fields[index].value)
                    } else if name == "user-agent" {
                        Self.keepFirst(&userAgent, fields[index].value)
                    }
                case 11:
                    if name == "traceparent" { Self.keepFirst(&traceParent, fields[index].value) }
                case 12:
                    if name == "grpc-timeout" {
                        Self.keepFirst(&timeout, fields[index].value)
                    } else if name == "content-type" {
                        // Read by the connection, which chose gRPC by the first; only a second one matters here.
                        if contentTypeSeen, repeatedSingleton == nil { repeatedSingleton = "Content-Type" }
                        contentTypeSeen = true
                    }
                case 13:
                    if name == "authorization" {
                        if authorization != nil, repeatedSingleton == nil { repeatedSingleton = "Authorization" }
                        Self.keepFirst(&authorization, fields[index].value)
                    } else if name == "grpc-encoding" {
                        Self.keepFirst(&encoding, fields[index].value)
                    }
                case 15:
                    if name == "idempotency-key" { Self.keepFirst(&idempotencyKey, fields[index].value) }
                case 20:
                    if name == "grpc-accept-encoding" { Self.keepFirst(&acceptEncoding, fields[index].value) }
                case 21:
                    if name == "instill-requester-uid" {
                        Self.keepFirst(&requesterUID, fields[index].value)
                    } else if name == "instill-return-traces" {
                        Self.keepFirst(&returnTraces, fields[index].value)
                    }
                default:
                    break
                }
            }
        }
        self.init(
            path: path, method: method, requestID: requestID, authorization: authorization,
            repeatedSingleton: repeatedSingleton, requesterUID: requesterUID, timeout: timeout, encoding: encoding,
            acceptEncoding: acceptEncoding, traceParent: traceParent, traceState: traceState,
            idempotencyKey: idempotencyKey, returnTraces: returnTraces, userAgent: userAgent)
    }

    private static func keepFirst(_ slot: inout String?, _ value: String) {
        if slot == nil { slot = value }
    }
}
