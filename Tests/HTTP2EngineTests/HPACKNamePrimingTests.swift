import HTTP2Engine
import Testing

/// ``HPACKNamePriming``'s turns (issue 11): which messages index a never-indexed field so that its name stays in the
/// encoder's table. What goes on the wire is asserted end to end in BackendsTests' `GRPCBackendHPACKTests`.
@Suite("HPACK name priming of never-indexed fields")
struct HPACKNamePrimingTests {
    @Test(
        "the first message and every reprimeInterval-th after it index the field; the others never index it",
        arguments: ["request-id", "traceparent", "idempotency-key"])
    func turns(name: String) {
        var priming = HPACKNamePriming()
        let interval = Int(HPACKNamePriming.reprimeInterval)
        var indexed: [Int] = []
        for message in 0..<(2 * interval + 2) {
            if priming.indexing(for: name) == .encoderDecides { indexed.append(message) }
        }
        // At the edge: message `interval` is the second to index (one turn after the first), `interval - 1` and
        // `interval + 1` do not.
        #expect(indexed == [0, interval, 2 * interval])
    }

    @Test("each name has its own turns, and other fields are always left to the encoder")
    func namesApart() {
        var priming = HPACKNamePriming()
        #expect(priming.indexing(for: "request-id") == .encoderDecides)
        #expect(priming.indexing(for: "request-id") == .neverIndexed)
        // Another never-indexed name still has its first turn.
        #expect(priming.indexing(for: "traceparent") == .encoderDecides)
        #expect(priming.indexing(for: "idempotency-key") == .encoderDecides)
        #expect(priming.indexing(for: "traceparent") == .neverIndexed)
        // Names that only look alike (same length, other bytes), and ordinary fields: never forced either way.
        for name in ["request-ix", "traceparenT", "idempotency-kez", "grpc-timeout", ":path", "content-type"] {
            #expect(priming.indexing(for: name) == .encoderDecides, "\(name)")
            #expect(priming.indexing(for: name) == .encoderDecides, "\(name)")
        }
    }
}
