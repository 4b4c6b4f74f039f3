@testable import GatewayServer
import NIOCore
import NIOEmbedded
import Testing
import TriggerModel

/// `EventRelay`'s start rule on NIO's testing loop: the stream begins (SSE's `200` head) with the backend's
/// first event that is not an error; an error, a transport failure or the idle timeout before it ends the
/// relay unbegun, so the frontend answers with a plain error response (API.md §2: only an error after the
/// first byte is an error event).
@Suite("EventRelay: when a stream begins")
struct EventRelayTests {
    /// A source whose results the test hands over, one per `next()`.
    final class ScriptedSource: TriggerEventSource {
        let loop: EmbeddedEventLoop
        var waiting: EventLoopPromise<TriggerEvent?>?
        var cancelled = false
        /// What ``lastProgress`` answers: the runner's last keep-alive.
        var progress: NIODeadline?
        var lastProgress: NIODeadline? { progress }

        init(loop: EmbeddedEventLoop) { self.loop = loop }

        func next() -> EventLoopFuture<TriggerEvent?> {
            let promise = loop.makePromise(of: TriggerEvent?.self)
            waiting = promise
            return promise.futureResult
        }

        func cancel() { cancelled = true }

        func send(_ event: TriggerEvent?) throws {
            let promise = try #require(waiting, "the relay is not waiting for an event")
            waiting = nil
            promise.succeed(event)
        }

        func fail(_ error: GatewayError) throws {
            let promise = try #require(waiting, "the relay is not waiting for an event")
            waiting = nil
            promise.fail(error)
        }
    }

    /// What the relay told its frontend, in order.
    final class Transcript {
        var lines: [String] = []
        var relay: EventRelay?
    }

    static func name(_ event: TriggerEvent) -> String {
        switch event {
        case .status: "status"
        case .output: "output"
        case .error(let error): "error \(error.code)"
        case .end: "end"
        }
    }

    static func relay(
        _ source: any TriggerEventSource, loop: EmbeddedEventLoop, idle: TimeAmount = .seconds(60),
        firstEvent: TimeAmount? = nil, written: ((TriggerEvent) -> EventLoopFuture<Void>?)? = nil
    ) -> Transcript {
        let transcript = Transcript()
        let relay = EventRelay(
            source: source, eventLoop: loop, idleTimeout: idle,
            firstEvent: firstEvent.map { timeout in
                EventRelay.FirstEventBound(
                    timeout: timeout, error: { GatewayError(.deadlineExceeded, "pool did not answer") })
            },
            begin: { transcript.lines.append("begin") },
            deliver: { event in
                transcript.lines.append("deliver \(name(event))")
                return written?(event) ?? nil
            },
            finish: { error in
                let began = transcript.relay?.began ?? false
                transcript.lines.append("finish \(error.map { "\($0.code)" } ?? "clean") began=\(began)")
            })
        transcript.relay = relay
        relay.start()
        return transcript
    }

    static let running = TriggerEvent.status(name: "PIPELINE_STATUS_UPDATED", data: ["status": .string("RUNNING")])

    @Test("an error event before any other is the answer: the stream never begins")
    func errorFirst() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop)
        try source.send(.error(GatewayError(.notFound, "pipeline \"nope\" not found")))
        #expect(transcript.lines == ["finish notFound began=false"])
        #expect(source.waiting == nil, "nothing more is pulled")
    }

    @Test("a transport failure before any event is the answer: the stream never begins")
    func failureFirst() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop)
        try source.fail(GatewayError(.backendFailed, "connection refused"))
        #expect(transcript.lines == ["finish backendFailed began=false"])
    }

    @Test("the first event begins the stream, once; an error after it is an event of the stream")
    func beginsWithFirstEvent() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop)
        #expect(transcript.lines.isEmpty, "nothing is sent before the backend's first event")
        try source.send(Self.running)
        try source.send(.output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [["token": .string("a")]]))
        try source.send(.error(GatewayError(.failedPrecondition, "boom")))
        try source.send(nil)
        #expect(
            transcript.lines == [
                "begin", "deliver status", "deliver output", "deliver error failedPrecondition",
                "finish clean began=true",
            ])
    }

    /// Review 17, finding 9: a runner that sends `: ping` comments between events (sse-starlette every 15 s) was
    /// cut at `stream_idle` while provably alive.
    @Test("a keep-alive between events restarts the idle wait: cut idle after the last one, not a tick before")
    func keepAliveCountsAsActivity() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop, idle: .seconds(1))
        try source.send(Self.running)
        loop.advanceTime(by: .milliseconds(900))
        source.progress = loop.now
        loop.advanceTime(by: .milliseconds(999))
        #expect(transcript.lines == ["begin", "deliver status"], "alive: its keep-alive was 999 ms ago")
        // A keep-alive from before the pull counts for nothing.
        loop.advanceTime(by: .milliseconds(1))
        #expect(transcript.lines == ["begin", "deliver status", "finish deadlineExceeded began=true"])
        #expect(source.cancelled)
    }

    @Test("keep-alives before the first event do not extend the first event's bound")
    func keepAliveBeforeFirstEvent() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop, idle: .seconds(10), firstEvent: .seconds(1))
        loop.advanceTime(by: .milliseconds(900))
        source.progress = loop.now
        loop.advanceTime(by: .milliseconds(100))
        #expect(transcript.lines == ["finish deadlineExceeded began=false"])
    }

    @Test("the idle timeout before the first event ends the relay unbegun and cancels the run; not a tick before")
    func idleBeforeFirstEvent() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop, idle: .seconds(5))
        loop.advanceTime(by: .seconds(5) - .nanoseconds(1))
        #expect(transcript.lines.isEmpty)
        #expect(!source.cancelled)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(transcript.lines == ["finish deadlineExceeded began=false"])
        #expect(source.cancelled)
    }

    @Test(
        "the first event waits the pool's request timeout, not the idle rule: cut at its edge with the pool's error",
        arguments: [(TimeAmount.seconds(3), TimeAmount.seconds(60)), (.seconds(90), .seconds(60))])
    func firstEventBound(first: TimeAmount, idle: TimeAmount) throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop, idle: idle, firstEvent: first)
        loop.advanceTime(by: first - .nanoseconds(1))
        #expect(transcript.lines.isEmpty)
        #expect(!source.cancelled)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(transcript.lines == ["finish deadlineExceeded began=false"])
        #expect(source.cancelled, "the hung run is cancelled (its slot freed)")
    }

    @Test(
        "after the first event the idle rule applies, also when it is shorter than the first event's wait",
        arguments: [TimeAmount.seconds(5), .seconds(120)])
    func idleAfterFirstEvent(idle: TimeAmount) throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop, idle: idle, firstEvent: .seconds(60))
        loop.advanceTime(by: .seconds(59))
        try source.send(Self.running)
        loop.advanceTime(by: idle - .nanoseconds(1))
        #expect(transcript.lines == ["begin", "deliver status"])
        #expect(!source.cancelled)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(transcript.lines == ["begin", "deliver status", "finish deadlineExceeded began=true"])
        #expect(source.cancelled)
    }

    @Test("time spent waiting for a slow client counts for neither wait; the backend's wait starts at the pull")
    func slowClientIsNotIdle() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let write = loop.makePromise(of: Void.self)
        let transcript = Self.relay(
            source, loop: loop, idle: .seconds(5), firstEvent: .seconds(3), written: { _ in write.futureResult })
        try source.send(Self.running)
        loop.advanceTime(by: .seconds(30))  // the client reads nothing for 30 s
        #expect(transcript.lines == ["begin", "deliver status"])
        write.succeed()
        loop.advanceTime(by: .seconds(5) - .nanoseconds(1))
        #expect(!source.cancelled, "the idle wait counted the client's time")
        loop.advanceTime(by: .nanoseconds(1))
        #expect(source.cancelled)
        #expect(transcript.lines.last == "finish deadlineExceeded began=true")
    }

    @Test("a stream that ends with no event at all begins and ends clean (an empty stream, not an error)")
    func emptyStream() throws {
        let loop = EmbeddedEventLoop()
        let source = ScriptedSource(loop: loop)
        let transcript = Self.relay(source, loop: loop)
        try source.send(nil)
        #expect(transcript.lines == ["begin", "finish clean began=true"])
    }

    /// A source holding all its events already, each handed over inside the `next(to:)` that asks (as a
    /// loop-native source does with events one read decoded); records how deep those calls nest.
    final class ReadySource: TriggerEventSource {
        var events: [TriggerEvent]
        var depth = 0
        var maxDepth = 0

        init(_ events: [TriggerEvent]) { self.events = events }

        func next() -> EventLoopFuture<TriggerEvent?> { preconditionFailure("the relay pulls with next(to:)") }

        func next(to receiver: any TriggerEventReceiver) {
            depth += 1
            maxDepth = max(maxDepth, depth)
            defer { depth -= 1 }
            receiver.receive(.success(events.isEmpty ? nil : events.removeFirst()))
        }

        func cancel() {}
    }

    @Test("events a source holds ready, to a client that takes each at once, nest at most maxNestedPulls deep")
    func readyEventsBoundedNesting() throws {
        let loop = EmbeddedEventLoop()
        let count = 200
        let source = ReadySource(
            (0..<count).map { .output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [["i": .number(Double($0))]]) }
                + [.end(TriggerResult(outputs: []))])
        let transcript = Self.relay(source, loop: loop)
        // The pulls past the bound continue from loop tasks.
        loop.run()
        #expect(transcript.lines.filter { $0 == "deliver output" }.count == count)
        #expect(transcript.lines.last == "finish clean began=true")
        #expect(source.maxDepth <= EventRelay.maxNestedPulls)
        #expect(source.maxDepth == EventRelay.maxNestedPulls, "the events did nest up to the bound")
    }
}
