@testable import GatewayServer
import Testing

/// Review 24, M1: the process-wide budget of buffered request-body bytes, and the claims requests take of it.
@Suite("Request buffer budget")
struct RequestBufferBudgetTests {
    /// Owns a claim, as a stream's state or an HTTP/1.1 handler does: its deinit returns the bytes.
    final class Owner {
        var claim = RequestBufferClaim()
    }

    /// A claim follows the bytes received, never a declared length: 32 streams each declaring 32 MiB and
    /// sending a byte held the whole 1 GiB default when declared lengths were claimed at once.
    @Test(
        "a byte received claims one step (16 KiB), whatever length the body declared; at the budget fits, one byte past is refused"
    )
    func receivedEdge() {
        let budget = RequestBufferBudget(limit: 1 << 20)
        var claim = RequestBufferClaim()
        let held1 = claim.hold(1, from: budget)
        #expect(held1)
        #expect(claim.bytes == RequestBufferClaim.minimumStep)
        #expect(budget.bufferedBytes == 16 << 10)
        // The whole budget, received: fits exactly.
        let held2 = claim.hold(1 << 20, from: budget)
        #expect(held2)
        #expect(budget.bufferedBytes == 1 << 20)
        claim.release()
        #expect(budget.bufferedBytes == 0)

        var over = RequestBufferClaim()
        let held3 = over.hold((1 << 20) + 1, from: budget)
        #expect(!held3)
        #expect(over.bytes == 0)
        #expect(budget.bufferedBytes == 0)
    }

    @Test(
        "a body grows its claim in steps (16 KiB, then a quarter of its claim, at most 256 KiB) and fits the budget exactly"
    )
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
            #expect(claim.bytes - received <= max(received / 4, RequestBufferClaim.minimumStep))
        }
        // 192 DATA frames, a few dozen steps (16 KiB while small, then by a quarter, then by 256 KiB).
        #expect(atomics < 40, "\(atomics)")
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
        let held6 = first.hold(600_000, from: budget)
        #expect(held6)
        var second = RequestBufferClaim()
        let held7 = second.hold(600_000, from: budget)
        #expect(!held7)
        let held8 = second.hold((1 << 20) - first.bytes, from: budget)
        #expect(held8)
        second.release()
        first.release()
        let held9 = second.hold(600_000, from: budget)
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
