import Testing
import TriggerModel

/// `SensitiveFields`: one bit per forwarded field, its raw value what stores keep.
@Suite("SensitiveFields")
struct SensitiveFieldsSetTests {
    @Test("insert, contains and remove by field; the bits are fixed; wire names map to members, others to none")
    func members() {
        var set = SensitiveFields()
        #expect(set.isEmpty)
        set.insert(.traceState)
        set.insert(.idempotencyKey)
        #expect(set.contains(.traceState) && set.contains(.idempotencyKey) && !set.contains(.requestID))
        #expect(set.rawValue == 0b01100)
        set.remove(.traceState)
        #expect(!set.contains(.traceState) && set.contains(.idempotencyKey))
        set.remove(.traceState)  // removing an absent member changes nothing
        #expect(set.rawValue == 0b01000)
        // Stored in operations: the bits must never move.
        let bits: [(SensitiveFields, UInt8)] = [
            (.requestID, 1), (.traceParent, 2), (.traceState, 4), (.idempotencyKey, 8), (.requesterUID, 16),
        ]
        for (member, bit) in bits { #expect(member.rawValue == bit) }
        let names = ["request-id", "traceparent", "tracestate", "idempotency-key", "instill-requester-uid"]
        #expect(names.map { SensitiveFields(fieldName: $0)?.rawValue } == bits.map { $0.1 })
        for other in ["x-trigger-principal", "authorization", "Request-Id", ""] {
            #expect(SensitiveFields(fieldName: other) == nil)
        }
    }
}
