@testable import Backends
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing
import TriggerModel

/// The frontends' sync and stream paths (DESIGN.md "Threading model"): `BackendPool.run(_:on:cancellation:)` and
/// `admitStream(_:on:)` answer on the caller's event loop, over connections of that loop, with the pool's slot
/// and deadline kept on the loop.
@Suite("loop-native calls and streams")
struct LoopNativeCallTests {
    @Test("a call made on an event loop is answered on that loop, over a connection of that loop")
    func answeredOnTheCallersLoop() async throws {
        try await withGRPCBackend { backend in
            let pool = BackendPool(configuration: backend.configuration, transport: backend.transport)
            let loops = Array(testGroup.makeIterator())
            for (i, loop) in loops.enumerated() {
                var request = makeRequest("meta")
                request.idempotencyKey = "key-\(i)"
                for _ in 0..<3 {
                    let future = pool.run(request, on: loop, cancellation: TriggerCancellation())
                    #expect(future.eventLoop === loop)
                    let out = try #require(try await future.get().outputs.first)
                    #expect(out["idempotency_key"] == .string("key-\(i)"))
                }
            }
            // One connection per loop, reused by that loop's calls.
            #expect(backend.transport.connectionCount == loops.count)
        }
    }

    /// A leak found by RSS growth (19 MB per 10 000 calls): the run held the caller's cancellation and the
    /// cancellation's handler held the run, so neither (nor the request they carry) was ever freed.
    @Test("a finished call keeps nothing alive: its cancellation (and the run its handler held) is freed")
    func finishedCallIsFreed() async throws {
        try await withGRPCBackend { backend in
            let pool = BackendPool(configuration: backend.configuration, transport: backend.transport)
            for pinned in [true, false] {
                weak var released: TriggerCancellation?
                do {
                    let cancellation = TriggerCancellation()
                    released = cancellation
                    let result: TriggerResult
                    if pinned {
                        result = try await pool.run(
                            makeRequest("echo"), on: testGroup.next(), cancellation: cancellation
                        )
                        .get()
                    } else {
                        result = try await backend.transport.call(
                            makeRequest("echo"), on: testGroup.next(), pinned: false, cancellation: cancellation
                        ).get()
                    }
                    #expect(!result.outputs.isEmpty)
                }
                // What is left of the call is released on its loop after the answer: give it a moment.
                #expect(await eventually(within: .seconds(10)) { released == nil }, "pinned: \(pinned)")
            }
        }
    }

    @Test("cancelling a call resets its stream: the caller gets CANCELLED and the backend's run is cancelled")
    func cancellation() async throws {
        try await withGRPCBackend { backend in
            let pool = BackendPool(configuration: backend.configuration, transport: backend.transport)
            let cancellation = TriggerCancellation()
            let future = pool.run(makeRequest("slow"), on: testGroup.next(), cancellation: cancellation)
            #expect(await backend.probe.wait(for: "slow.started"))
            cancellation.cancel()
            let error = await #expect(throws: GatewayError.self) { try await future.get() }
            #expect(error?.code == .cancelled)
            #expect(await backend.probe.wait(for: "slow.cancelled"))
        }
    }

    @Test("the pool's request timeout ends the call with DEADLINE_EXCEEDED and cancels the backend's run")
    func poolDeadline() async throws {
        try await withGRPCBackend { backend in
            var configuration = backend.configuration
            configuration.requestTimeout = .milliseconds(200)
            let pool = BackendPool(configuration: configuration, transport: backend.transport)
            let future = pool.run(makeRequest("slow"), on: testGroup.next(), cancellation: TriggerCancellation())
            let error = await #expect(throws: GatewayError.self) { try await future.get() }
            // The slow pipeline runs for a minute and then answers: an error at all shows the deadline cut it, and
            // its wording names the pool's 200 ms. No wall-clock bound: with every unit suite in parallel on two
            // cores, the answer's resumption waited 20.1 s for a thread once (CI of stop 62, a 20 s bound here).
            #expect(error?.code == .deadlineExceeded)
            #expect(error?.message == "backend pool \"\(configuration.name)\" did not answer within 200ms")
            #expect(await backend.probe.wait(for: "slow.cancelled", within: .seconds(20)))
        }
    }

    @Test(
        "at max_concurrency a call waits in the queue; past max_queue it is refused at once; a queued call can be withdrawn"
    )
    func concurrencyLimit() async throws {
        try await withGRPCBackend { backend in
            var configuration = backend.configuration
            configuration.maxConcurrency = 1
            configuration.maxQueue = 1
            let pool = BackendPool(configuration: configuration, transport: backend.transport)
            let loop = testGroup.next()
            let holder = TriggerCancellation()
            let running = pool.run(makeRequest("slow"), on: loop, cancellation: holder)
            #expect(await backend.probe.wait(for: "slow.started"))

            let waiter = TriggerCancellation()
            let queued = pool.run(makeRequest("echo", ["a": .number(1)]), on: loop, cancellation: waiter)
            let refused = pool.run(makeRequest("echo"), on: loop, cancellation: TriggerCancellation())
            let overload = await #expect(throws: GatewayError.self) { try await refused.get() }
            #expect(overload?.code == .overloaded)
            #expect(
                overload?.message
                    == "backend pool \"\(configuration.name)\" is overloaded: 1 call running and 1 queued; retry later")

            // Withdrawn from the queue: it fails and never takes the slot.
            waiter.cancel()
            await #expect(throws: CancellationError.self) { try await queued.get() }

            // The slot comes back when the running call ends, and the next call gets it.
            let next = pool.run(makeRequest("echo", ["a": .number(2)]), on: loop, cancellation: TriggerCancellation())
            holder.cancel()
            _ = try? await running.get()
            let answer = try await next.get()
            #expect(answer.outputs.first?["a"] == .number(2))
            #expect(pool.slotsInUse == 0)
        }
    }

    /// Pulls `source` to its end on its loop.
    static func collect(_ source: NIOLoopBound<any TriggerEventSource>, _ soFar: [TriggerEvent] = [])
        -> EventLoopFuture<[TriggerEvent]>
    {
        source.value.next().flatMap { event in
            guard let event else { return source.eventLoop.makeSucceededFuture(soFar) }
            return collect(source, soFar + [event])
        }
    }

    @Test("a stream opened on an event loop yields its events there, one per pull, then nil, and gives its slot back")
    func streamOnTheLoop() async throws {
        try await withGRPCBackend { backend in
            let pool = BackendPool(configuration: backend.configuration, transport: backend.transport)
            let loop = testGroup.next()
            let events = try await loop.flatSubmit {
                do {
                    let source = try pool.admitStream(makeRequest("stream", ["count": .number(3)]), on: loop)
                    return Self.collect(NIOLoopBound(source, eventLoop: loop))
                } catch {
                    return loop.makeFailedFuture(error)
                }
            }.get()
            #expect(events.count == 5)  // status, 3 outputs, end
            guard case .end(let result)? = events.last else {
                Issue.record("expected .end last, got \(events)")
                return
            }
            #expect(result.outputs.first?["count"] == .number(3))
            #expect(pool.slotsInUse == 0)
            #expect(backend.transport.connectionCount == 1)
        }
    }

    @Test(
        "over max_concurrency and max_queue a stream is refused before its first event; cancelling one frees its slot and stops the backend's run"
    )
    func streamSlotsAndCancellation() async throws {
        try await withGRPCBackend { backend in
            var configuration = backend.configuration
            configuration.maxConcurrency = 1
            configuration.maxQueue = 0
            let pool = BackendPool(configuration: configuration, transport: backend.transport)
            let loop = testGroup.next()
            let request = makeRequest("stream", ["forever": .bool(true)])
            let first = try await loop.flatSubmit {
                do {
                    let source = NIOLoopBound(try pool.admitStream(request, on: loop), eventLoop: loop)
                    return source.value.next().flatMap { _ in source.value.next() }.map { _ in source }
                } catch {
                    return loop.makeFailedFuture(error)
                }
            }.get()
            let refusal = try await loop.submit { () -> GatewayError? in
                do {
                    _ = try pool.admitStream(request, on: loop)
                    return nil
                } catch {
                    return error as? GatewayError
                }
            }.get()
            #expect(refusal?.code == .overloaded)
            try await loop.submit { first.value.cancel() }.get()
            #expect(await backend.probe.wait(for: "stream.cancelled"))
            #expect(pool.slotsInUse == 0)
            let after = try await loop.submit { first.value.next() }.get().get()
            #expect(after == nil)
        }
    }
}
