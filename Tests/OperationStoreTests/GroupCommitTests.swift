import OperationStore
import Synchronization
import Testing

/// `GroupCommit` on its own: who commits, and when a waiting caller returns (issue 12).
@Suite("Group commit tickets")
struct GroupCommitTests {
    @Test("a ticket another holder's commit answered returns its outcome without a commit of its own")
    func answeredByEarlierCommit() async throws {
        let batcher = GroupCommit<Int, Int>()
        let first = batcher.add(1)
        let second = batcher.add(2)
        #expect(!first.isAnswered && !second.isAnswered)
        let commits = Mutex(0)
        let commit: ([GroupCommit<Int, Int>.Ticket]) async -> Void = { batch in
            commits.withLock { $0 += 1 }
            for ticket in batch { ticket.outcome = .success(ticket.item * 10) }
        }
        #expect(try await batcher.drain(until: first, commit: commit) == 10)
        #expect(second.isAnswered)
        #expect(try await batcher.drain(until: second, commit: commit) == 20)
        #expect(commits.withLock { $0 } == 1)
        #expect(batcher.transactions == 1)
    }

    @Test("a failed outcome is thrown; a commit that leaves the ticket unanswered fails it rather than hang")
    func failureAndUnanswered() async throws {
        struct Refused: Error {}
        let batcher = GroupCommit<Int, Int>(maxBatch: 1)
        let refused = batcher.add(1)
        let forgotten = batcher.add(2)
        await #expect(throws: Refused.self) {
            try await batcher.drain(until: refused) { batch in
                for ticket in batch { ticket.outcome = .failure(Refused()) }
            }
        }
        #expect(refused.isAnswered)
        // maxBatch 1: the first commit takes only `refused`; this commit takes `forgotten` and answers nothing.
        await #expect(throws: CancellationError.self) {
            try await batcher.drain(until: forgotten) { _ in }
        }
        #expect(!forgotten.isAnswered)
    }
}
