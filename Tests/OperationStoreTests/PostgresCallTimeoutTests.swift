import NIOCore
import NIOEmbedded
@testable import PostgresOperationStore
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
}
