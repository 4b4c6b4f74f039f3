@testable import GatewayServer
import Testing

/// Review 24, M1: the process-wide budget of buffered request-body bytes, and the claims requests take of it.
@Suite("Request buffer budget")
struct RequestBufferBudgetTests {
    /// Owns a claim, as a stream's state or an HTTP/1.1 handler does: its deinit returns the bytes.
    final class Owner {
        var claim = RequestBufferClaim()
    }

    @Test("a body of declared length takes its length in one step; at the budget fits, one byte past is refused")
    func declaredEdge() {
        let budget = RequestBufferBudget(limit: 1 << 20)
        var claim = RequestBufferClaim()
        claim.expect(1 << 20)
        let held1 = claim.hold(16_384, from: budget)
        #expect(held1)
        #expect(claim.bytes == 1 << 20)
        #expect(budget.bufferedBytes == 1 << 20)
        // The rest of the body is within the claim: no more taken.
        let held2 = claim.hold(1 << 20, from: budget)
        #expect(held2)
        #expect(budget.bufferedBytes == 1 << 20)
        claim.release()
        #expect(budget.bufferedBytes == 0)

        var over = RequestBufferClaim()
        over.expect((1 << 20) + 1)
        let held3 = over.hold(16_384, from: budget)
        #expect(!held3)
        #expect(over.bytes == 0)
        #expect(budget.bufferedBytes == 0)
    }

    @Test("a body of unknown length grows in steps (64 KiB, doubling, at most 1 MiB) and fits the budget exactly")
    func steps() {
        let budget = RequestBufferBudget(limit: 3 << 20)
        var claim = RequestBufferClaim()
        var atomics = 0
        var last = 0
        var received = 0
        while received < 3 << 20 {
            received += 16_384
            let held4 = claim.hold(received, from: budget)
            #expect(held4)
            if claim.bytes != last { atomics += 1 }
            last = claim.bytes
            #expect(claim.bytes >= received)
            #expect(claim.bytes - received < RequestBufferClaim.maximumStep)
        }
        // 192 DATA frames, a handful of steps: 64K, 128K, 256K, 512K, 1M, 2M, 3M.
        #expect(atomics == 7)
        #expect(budget.bufferedBytes == 3 << 20)
        // One byte past the budget is refused, and the claim keeps what it had.
        let held5 = claim.hold((3 << 20) + 1, from: budget)
        #expect(!held5)
        #expect(claim.bytes == 3 << 20)
    }

    @Test("a second body is refused while the first holds the budget, and fits once it is released")
    func sharing() {
        let budget = RequestBufferBudget(limit: 1 << 20)
        var first = RequestBufferClaim()
        first.expect(600_000)
        let held6 = first.hold(1, from: budget)
        #expect(held6)
        var second = RequestBufferClaim()
        second.expect(600_000)
        let held7 = second.hold(1, from: budget)
        #expect(!held7)
        second.expect((1 << 20) - 600_000)
        let held8 = second.hold(1, from: budget)
        #expect(held8)
        second.release()
        first.release()
        second.expect(600_000)
        let held9 = second.hold(1, from: budget)
        #expect(held9)
        second.release()
        #expect(budget.bufferedBytes == 0)
    }

    @Test("the owner's deinit returns what its claim holds (a path that never releases cannot leak)")
    func ownerDeinit() {
        let budget = RequestBufferBudget(limit: 1 << 20)
        var owner: Owner? = Owner()
        let held10 = owner!.claim.hold(100_000, from: budget)
        #expect(held10)
        #expect(budget.bufferedBytes > 0)
        owner = nil
        #expect(budget.bufferedBytes == 0)
    }

    @Test("limit 0 is no budget: every claim fits, and is still counted")
    func unlimited() {
        let budget = RequestBufferBudget(limit: 0)
        var claim = RequestBufferClaim()
        let held11 = claim.hold(1 << 40, from: budget)
        #expect(held11)
        #expect(budget.bufferedBytes == 1 << 40)
        claim.release()
        #expect(budget.bufferedBytes == 0)
        // A reload's new limit applies to the next claim.
        budget.limit = 1024
        let held12 = claim.hold(1025, from: budget)
        #expect(!held12)
    }
}
