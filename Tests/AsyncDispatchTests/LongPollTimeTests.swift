@testable import AsyncDispatch
import FoundationEssentials
import GatewayConfig
import GatewayTestSupport
import OperationStore
import Synchronization
import Testing
import TriggerModel

/// A long-poll (`GET …/operations/{id}?wait=…`, gRPC GetOperation with a wait) on an injected clock (issue 19,
/// item 5): hour-long waits stepped through in virtual time. Each test has a one-minute limit, so a long-poll
/// that slept on the wall clock could not pass.
@Suite("Long-poll on an injected clock: the wait, the store re-read each poll interval, the local notice")
struct LongPollTimeTests {
    static let hour = Duration.seconds(3600)
    static let poll = Duration.seconds(300)
    /// While a long-poll waits, exactly one task sleeps on the clock: its poll-interval timer.
    static let sleepers = 1

    static func operations(_ store: any OperationStore, _ time: VirtualTime) -> AsyncOperations {
        AsyncOperations(
            store: store, settings: StoreConfiguration(pollInterval: poll, maxWait: hour), clock: time)
    }

    /// A `get(id:wait:)` running in a task; `answered` turns true when it returns.
    final class PendingPoll: Sendable {
        let task: Task<Operation, any Error>
        private let done: Done

        final class Done: Sendable {
            let value = Mutex(false)
        }

        init(_ operations: AsyncOperations, _ id: String, wait: Duration) {
            let done = Done()
            self.done = done
            task = Task {
                defer { done.value.withLock { $0 = true } }
                return try await operations.get(id: id, wait: wait)
            }
        }

        var answered: Bool { done.value.withLock { $0 } }
    }

    /// Claims the only queued operation `id` as `owner` and stores its success, as a dispatcher would.
    static func runToSuccess(_ id: String, in store: any OperationStore, as owner: String, at now: Date) async throws {
        let claimed = try await store.claim(owner: owner, leaseDuration: hour, limit: 1, now: now, scope: .all)
        #expect(claimed.map(\.id) == [id])
        let stored = try await store.complete(
            id: id, owner: owner, result: TriggerResult(outputs: [["done": .bool(true)]]), now: now)
        #expect(stored)
    }

    @Test("an unfinished operation is answered when the wait ends, not a second before", .timeLimit(.minutes(1)))
    func waitEndsOnTheClock() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let operations = Self.operations(store, time)
            let (operation, _) = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil)
            let poll = PendingPoll(operations, operation.id, wait: Self.hour)
            #expect(await time.settle(sleepers: Self.sleepers))
            // Eleven poll intervals and 4:59 of the twelfth: re-read each time, still waiting.
            for _ in 0..<11 { #expect(await time.advance(by: Self.poll, settlingOn: Self.sleepers)) }
            #expect(await time.advance(by: Self.poll - .seconds(1), settlingOn: Self.sleepers))
            #expect(!poll.answered, "answered before the wait ended")
            await time.advance(by: .seconds(1))
            let answer = try await poll.task.value
            #expect(answer.state == .queued)
        }
    }

    @Test("a wait longer than store.max_wait is cut to it", .timeLimit(.minutes(1)))
    func waitIsCappedByMaxWait() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let operations = Self.operations(store, time)
            let (operation, _) = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil)
            let poll = PendingPoll(operations, operation.id, wait: Self.hour * 24)
            #expect(await time.settle(sleepers: Self.sleepers))
            for _ in 0..<11 { #expect(await time.advance(by: Self.poll, settlingOn: Self.sleepers)) }
            #expect(await time.advance(by: Self.poll - .seconds(1), settlingOn: Self.sleepers))
            #expect(!poll.answered)
            await time.advance(by: .seconds(1))
            #expect(try await poll.task.value.state == .queued)
        }
    }

    @Test(
        "a result stored by another instance (no local notice) is seen at the next poll interval, not before",
        .timeLimit(.minutes(1)))
    func otherInstanceResultAtNextPoll() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let operations = Self.operations(store, time)
            let (operation, _) = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil)
            let poll = PendingPoll(operations, operation.id, wait: Self.hour)
            #expect(await time.settle(sleepers: Self.sleepers))
            // Another instance claims and completes it: the store changes, nothing here is told.
            try await Self.runToSuccess(operation.id, in: store, as: "other", at: time.wallClock())
            #expect(await time.advance(by: Self.poll - .seconds(1), settlingOn: Self.sleepers))
            #expect(!poll.answered, "answered before the next re-read")
            await time.advance(by: .seconds(1))
            #expect(try await poll.task.value.state == .succeeded)
        }
    }

    @Test("an operation finished on this instance answers the long-poll at once", .timeLimit(.minutes(1)))
    func localNoticeAnswersAtOnce() async throws {
        let time = VirtualTime()
        try await withRecordingStore(now: time.wallClock) { store in
            let operations = Self.operations(store, time)
            let (operation, _) = try await store.enqueue(asyncRequest("echo"), idempotencyKey: nil)
            let poll = PendingPoll(operations, operation.id, wait: Self.hour)
            #expect(await time.settle(sleepers: Self.sleepers))
            try await Self.runToSuccess(operation.id, in: store, as: "here", at: time.wallClock())
            await operations.finished(operation.id, ref: operation.ref)
            // No time moves: the notice alone answers it.
            #expect(try await poll.task.value.state == .succeeded)
            #expect(time.elapsed == .zero)
        }
    }
}
