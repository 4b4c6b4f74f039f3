@testable import Backends
import NIOCore
import NIOPosix
import Testing
import TriggerModel

/// The http transport's loop-native stream (`HTTPBackendStreamSource`, issue 11): events handed over on the
/// frontend's loop, with no task per event (one already decoded inside the pull that asks for it); the
/// connection goes back to the loop's idle list after a complete answer.
@Suite("http backend: the loop-native stream source")
struct HTTPBackendStreamSourceTests {
    /// An SSE answer of `count` output events and a final one, in one piece (so one read decodes many of them).
    static func answer(events count: Int) -> String {
        var events = ""
        for i in 0..<count { events += "event: PIPELINE_OUTPUT_UPDATED\ndata: {\"outputs\":[{\"i\":\(i)}]}\n\n" }
        events += "data: {\"outputs\":[{\"x\":1}],\"metadata\":{}}\n\n"
        return "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: \(events.utf8.count)\r\n\r\n"
            + events
    }

    /// Pulls from inside its own `receive`, as the relay does when a write completes at once; records the events,
    /// the deepest nesting of `receive` calls, and whether every call came on `loop`. After the first event it
    /// pulls from a later loop task instead (as the relay does while a slow client's write is pending): the rest
    /// of that read is decoded meanwhile and waits, so the pulls after it find events ready.
    final class Collector: TriggerEventReceiver, @unchecked Sendable {
        let source: any TriggerEventSource
        let loop: any EventLoop
        let done: EventLoopPromise<Void>
        var events: [TriggerEvent] = []
        var depth = 0
        var maxDepth = 0
        var offLoop = 0

        init(source: any TriggerEventSource, loop: any EventLoop) {
            self.source = source
            self.loop = loop
            self.done = loop.makePromise()
        }

        func receive(_ result: Result<TriggerEvent?, any Error>) {
            if !loop.inEventLoop { offLoop += 1 }
            depth += 1
            maxDepth = max(maxDepth, depth)
            defer { depth -= 1 }
            switch result {
            case .success(let event?):
                events.append(event)
                if events.count == 1 {
                    loop.execute { self.source.next(to: self) }
                } else {
                    source.next(to: self)
                }
            case .success(nil):
                done.succeed(())
            case .failure(let error):
                done.fail(error)
            }
        }
    }

    /// One stream read whole on `loop`.
    static func stream(_ transport: HTTPBackendTransport, on loop: any EventLoop) async throws -> Collector {
        let collector = try await loop.submit {
            let collector = Collector(source: transport.openStream(makeRequest("echo"), on: loop), loop: loop)
            collector.source.next(to: collector)
            return collector
        }.get()
        try await collector.done.futureResult.get()
        return collector
    }

    @Test("200 events from one answer arrive in order, on the loop, those already decoded inside the pull")
    func readyEventsInsidePull() async throws {
        let count = 200
        let backend = try await ScriptedBackend.start(.init(pieces: [Self.answer(events: count)], close: false))
        let transport = HTTPBackendFramingTests.transport(port: backend.port)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let collector = try await Self.stream(transport, on: loop)
        let outputs = collector.events.compactMap { event -> Double? in
            guard case .output(_, let result) = event, case .number(let i, _)? = result.outputs.first?["i"] else {
                return nil
            }
            return i
        }
        #expect(outputs == (0..<count).map(Double.init))
        guard case .end(let result)? = collector.events.last else {
            Issue.record("no final event: \(String(describing: collector.events.last))")
            return
        }
        #expect(result.outputs.first?["x"] == .number(1))
        #expect(collector.offLoop == 0)
        // Events already decoded were handed over inside the pull that asked, with no task between: this
        // collector, unlike the relay (`EventRelay.maxNestedPulls`), does not bound that nesting.
        // (A task per event, as the consumer's bridge made, would start each receive on a fresh stack: depth 1.)
        #expect(collector.maxDepth > 1)
        transport.retire()
        try await backend.stop()
    }

    @Test("a complete answer gives its connection back to the loop: the next stream on that loop reuses it")
    func connectionReusedOnItsLoop() async throws {
        let backend = try await ScriptedBackend.start(.init(pieces: [Self.answer(events: 3)], close: false))
        let transport = HTTPBackendFramingTests.transport(port: backend.port)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        for _ in 0..<3 {
            let collector = try await Self.stream(transport, on: loop)
            #expect(collector.events.count == 4)
        }
        // The release is a loop task queued before the final event was handed over, so it ran before the next
        // stream (queued on the same loop after it) looked for an idle connection.
        #expect(backend.accepted == 1)
        #expect(backend.requests == 3)
        transport.retire()
        try await backend.stop()
    }
}
