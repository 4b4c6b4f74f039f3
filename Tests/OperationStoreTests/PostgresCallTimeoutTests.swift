import NIOCore
import NIOEmbedded
@testable import PostgresOperationStore
import Synchronization
import Testing

/// `PostgresOperationStore.withTimeout`, which bounds every store call by `operationTimeout`: one task and one
/// event-loop timer per call (bench/README.md, branch asynccost). Time is the test event loop's.
@Suite("PostgreSQL store call timeout")
struct PostgresCallTimeoutTests {
    @Test("a call that ends before its timeout answers its value, and its timer is cancelled")
    func answered() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let value = try await PostgresOperationStore.withTimeout(.seconds(5), on: loop) { 42 }
        #expect(value == 42)
        // Past the timeout nothing is left to fire.
        await loop.advanceTime(by: .seconds(10))
        // The timer's cancellation reaches the test loop asynchronously: run it before the loop ends (else the
        // loop drops the cancelled timer's promise uncompleted, which NIO reports as a leak).
        await loop.run()
        await loop.shutdownGracefully()
    }

    @Test("a call still running a moment before its timeout is left alone; at the timeout it is cancelled: nil")
    func timedOut() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
        let (ticks, tick) = AsyncStream.makeStream(of: Void.self)
        let (reports, report) = AsyncStream.makeStream(of: Bool.self)
        let call = Task {
            try await PostgresOperationStore.withTimeout(.seconds(5), on: loop) { () async throws -> Int in
                startedSignal.yield()
                // Answers each tick with whether it was cancelled; the stream ends when the task is cancelled.
                for await _ in ticks { report.yield(Task.isCancelled) }
                try Task.checkCancellation()
                return 1
            }
        }
        var startedIterator = started.makeAsyncIterator()
        await startedIterator.next()
        var reportsIterator = reports.makeAsyncIterator()
        await loop.advanceTime(by: .milliseconds(4_999))
        tick.yield()
        #expect(await reportsIterator.next() == false)
        await loop.advanceTime(by: .milliseconds(1))
        #expect(try await call.value == nil)
        tick.finish()
        // The timer's cancellation reaches the test loop asynchronously: run it before the loop ends (else the
        // loop drops the cancelled timer's promise uncompleted, which NIO reports as a leak).
        await loop.run()
        await loop.shutdownGracefully()
    }

    @Test("a caller cancelled before the timeout cancels the call, whose error it gets")
    func callerCancelled() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
        let call = Task {
            try await PostgresOperationStore.withTimeout(.seconds(5), on: loop) { () async throws -> Int in
                startedSignal.yield()
                // Ends only when the task is cancelled (its continuation is kept until then).
                let (never, continuation) = AsyncStream.makeStream(of: Void.self)
                for await _ in never {}
                continuation.finish()
                try Task.checkCancellation()
                return 1
            }
        }
        var startedIterator = started.makeAsyncIterator()
        await startedIterator.next()
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        // The timer's cancellation reaches the test loop asynchronously: run it before the loop ends (else the
        // loop drops the cancelled timer's promise uncompleted, which NIO reports as a leak).
        await loop.run()
        await loop.shutdownGracefully()
    }

    /// A body that ignores its cancellation (PostgresNIO awaits a query's answer through an `EventLoopFuture`,
    /// which cancellation does not reach): review 26 H1, where one held a claim loop and a stop for good.
    private static func ignoringCancellation(
        started: AsyncStream<Void>.Continuation,
        release: AsyncStream<Void>
    ) -> @Sendable () async throws -> Int {
        {
            started.yield()
            // Not cancellable: a stream's iteration ends on cancellation, so wait on a continuation instead.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Task.detached {
                    for await _ in release {}
                    done.resume()
                }
            }
            return 7
        }
    }

    /// A `withTimeout(.seconds(5))` call of ``ignoringCancellation(started:release:)``, once its body has started;
    /// the body ends (answering 7) when the returned continuation finishes.
    private static func startIgnoringCall(
        on loop: NIOAsyncTestingEventLoop
    ) async -> (call: Task<Int?, any Error>, release: AsyncStream<Void>.Continuation) {
        let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseSignal) = AsyncStream.makeStream(of: Void.self)
        let call = Task {
            try await PostgresOperationStore.withTimeout(
                .seconds(5), on: loop, ignoringCancellation(started: startedSignal, release: release))
        }
        var startedIterator = started.makeAsyncIterator()
        await startedIterator.next()
        return (call, releaseSignal)
    }

    @Test("a timed-out call that ignores its cancellation is abandoned one timeout later, not a moment before")
    func abandonedAfterTimeout() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseSignal) = AsyncStream.makeStream(of: Void.self)
        let outcome = Mutex<String?>(nil)
        let call = Task {
            let text: String
            do {
                let value = try await PostgresOperationStore.withTimeout(
                    .seconds(5), on: loop, Self.ignoringCancellation(started: startedSignal, release: release))
                text = "value \(String(describing: value))"
            } catch let error as StoreCallAbandoned {
                text = "abandoned after \(error.after)"
            } catch {
                text = "error \(error)"
            }
            outcome.withLock { $0 = text }
        }
        var startedIterator = started.makeAsyncIterator()
        await startedIterator.next()
        await loop.advanceTime(by: .seconds(5))  // the timeout: cancelled, still running
        await loop.advanceTime(by: .milliseconds(4_999))
        await loop.run()
        for _ in 0..<100 { await Task.yield() }
        #expect(outcome.withLock { $0 } == nil, "ended before its grace")
        await loop.advanceTime(by: .milliseconds(1))
        await call.value
        #expect(outcome.withLock { $0 } == "abandoned after 5.0 seconds")
        releaseSignal.finish()  // the abandoned body ends later, in the background
        await loop.run()
        await loop.shutdownGracefully()
    }

    @Test("a cancelled caller whose call ignores the cancellation is answered one timeout later")
    func callerCancelledAbandoned() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let (call, releaseSignal) = await Self.startIgnoringCall(on: loop)
        call.cancel()
        await loop.run()
        await loop.advanceTime(by: .seconds(5))
        await #expect(throws: StoreCallAbandoned.self) { try await call.value }
        releaseSignal.finish()
        await loop.run()
        await loop.shutdownGracefully()
    }

    @Test("a timed-out call that ends within the grace still answers: its value, even after the timeout")
    func endsWithinGrace() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let (call, releaseSignal) = await Self.startIgnoringCall(on: loop)
        await loop.advanceTime(by: .seconds(5))
        await loop.advanceTime(by: .seconds(4))
        releaseSignal.finish()
        // Its value came after the timeout: reported, as a commit that made it is.
        #expect(try await call.value == 7)
        await loop.advanceTime(by: .seconds(5))
        await loop.run()
        await loop.shutdownGracefully()
    }
}
