@testable import GatewayServer
import HTTP2Engine
import Testing

/// The one-pass read of a gRPC call's header block answers exactly what `HTTP2Headers.first(name:)` answers
/// for each field it reads (it replaced thirteen such lookups).
@Suite("gRPC request head: one pass, the same answers as first(name:)")
struct GRPCRequestHeadTests {
    static let blocks: [HTTP2Headers] = [
        // What h2load and most clients send: none of the optional metadata.
        [
            ":method": "POST", ":scheme": "http", ":path": "/pipeline.pipeline.v1beta.PipelinePublicService/X",
            ":authority": "127.0.0.1", "content-type": "application/grpc", "te": "trailers",
        ],
        // Every field, some repeated (the first wins), and same-length look-alikes that must not match.
        [
            ":path": "/a", ":method": "POST", "request-id": "r-1", "request-id": "r-2", "tracestate": "a=1",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "grpc-timeout": "5S",
            "authorization": "Bearer t", "grpc-encoding": "gzip", "idempotency-key": "k", "idempotency-kez": "no",
            "grpc-accept-encoding": "gzip,identity", "instill-requester-uid": "ns", "instill-return-traces": "true",
            "instill-return-tracez": "no", "grpc-timeouts": "no", "x-other-header": "no", "user-agent": "no",
        ],
        // Empty values are values; an empty block has nothing.
        ["request-id": "", "authorization": ""],
        [:],
    ]

    @Test("each read field equals first(name:) on blocks with none, all, repeated and look-alike fields")
    func sameAsFirst() {
        // Every field the head reads, with how to get it back from the head.
        let read: [(String, (GRPCRequestHead) -> String?)] = [
            (":path", \.path), (":method", \.method), ("request-id", \.requestID),
            ("authorization", \.authorization), ("instill-requester-uid", \.requesterUID),
            ("grpc-timeout", \.timeout), ("grpc-encoding", \.encoding), ("grpc-accept-encoding", \.acceptEncoding),
            ("traceparent", \.traceParent), ("tracestate", \.traceState), ("idempotency-key", \.idempotencyKey),
            ("instill-return-traces", \.returnTraces),
        ]
        for headers in Self.blocks {
            let head = GRPCRequestHead(headers)
            for (name, get) in read {
                #expect(get(head) == headers.first(name: name), "\(name) in \(headers)")
            }
        }
        let full = GRPCRequestHead(Self.blocks[1])
        #expect(full.requestID == "r-1", "the first of repeated fields")
        #expect(full.idempotencyKey == "k")
        #expect(GRPCRequestHead(Self.blocks[0]).timeout == nil)
        #expect(GRPCRequestHead(Self.blocks[2]).requestID == "")
    }
}
