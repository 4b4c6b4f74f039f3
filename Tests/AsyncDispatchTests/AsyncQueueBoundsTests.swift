import AsyncDispatch
import Testing
import TriggerModel

/// `pools[].max_async_queued` (review 26 I2): the store's last count plus this instance's admissions since, against
/// each pool's bound.
@Suite("AsyncQueueBounds: a pool's async queue bound")
struct AsyncQueueBoundsTests {
    @Test("at the bound: admitted up to it, refused at it (overloaded); a new count starts the admissions over")
    func edge() throws {
        let bounds = AsyncQueueBounds()
        #expect(!bounds.isActive)
        bounds.limit(["gpu": 3])
        #expect(bounds.isActive)
        bounds.recordCount(byPool: ["gpu": 1, "cpu": 50])
        try bounds.admit(pool: "gpu")  // 1 + 0 < 3
        try bounds.admit(pool: "gpu")  // 1 + 1 < 3
        let refused = #expect(throws: GatewayError.self) { try bounds.admit(pool: "gpu") }  // 1 + 2 = 3
        #expect(refused?.code == .overloaded)
        #expect(refused?.message.contains("3 operations queued, at most 3") == true, "\(String(describing: refused))")
        // A pool without a bound is never refused, whatever its count.
        for _ in 0..<10 { try bounds.admit(pool: "cpu") }
        // The next read counts what was admitted: the queue drained to 2, so one more fits.
        bounds.recordCount(byPool: ["gpu": 2])
        try bounds.admit(pool: "gpu")
        #expect(throws: GatewayError.self) { try bounds.admit(pool: "gpu") }
    }

    @Test("unknown count (none read yet, or the read failed): admitted; a reload's new bound applies at once")
    func unknownAndReload() throws {
        let bounds = AsyncQueueBounds()
        bounds.limit(["gpu": 1])
        for _ in 0..<5 { try bounds.admit(pool: "gpu") }
        bounds.recordCount(byPool: ["gpu": 1])
        #expect(throws: GatewayError.self) { try bounds.admit(pool: "gpu") }
        bounds.recordUnknown()
        try bounds.admit(pool: "gpu")
        bounds.recordCount(byPool: ["gpu": 1])
        bounds.limit(["gpu": 2])
        try bounds.admit(pool: "gpu")
        #expect(throws: GatewayError.self) { try bounds.admit(pool: "gpu") }
        bounds.limit([:])
        #expect(!bounds.isActive)
        try bounds.admit(pool: "gpu")
    }
}
