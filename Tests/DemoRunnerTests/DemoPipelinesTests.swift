import DemoRunner
import NIOCore
import NIOEmbedded
import Testing
import TriggerModel

@Suite("DemoPipelines", .timeLimit(.minutes(1)))
struct DemoPipelinesTests {
    /// How long `tokensIsPullBased` stops reading to show the producer does NOT run ahead: three of its
    /// 100 ms delays, time for "b" and "c" to be made by a producer that did not wait to be asked.
    static let runAheadWindow = Duration.milliseconds(100) * 3

    static func request(_ pipeline: String, _ inputs: ValueObject...) -> TriggerRequest {
        TriggerRequest(
            ref: PipelineRef(namespace: "demo", pipeline: pipeline, release: "r1"),
            inputs: inputs.map { TriggerInput(variables: $0) }
        )
    }

    static func collect(_ stream: AsyncThrowingStream<TriggerEvent, any Error>) async throws -> [TriggerEvent] {
        var events: [TriggerEvent] = []
        for try await event in stream { events.append(event) }
        return events
    }

    static let running = TriggerEvent.status(name: "PIPELINE_STATUS_UPDATED", data: ["status": .string("RUNNING")])

    @Test("echo returns each batch element's variables unchanged, in order")
    func echo() async throws {
        let blob = Blob(contentType: "image/png", fileName: "a.png", bytes: ByteBuffer(bytes: [1, 2, 3]))
        let first: ValueObject = ["z": .number(1), "a": .list([.bool(true), .null]), "b": .blob(blob)]
        let second: ValueObject = ["text": .string("hi")]
        let result = try await DemoPipelines().run(Self.request("echo", first, second))
        #expect(result.outputs == [first, second])
        #expect(result.outputs[0].keys == ["z", "a", "b"])
    }

    @Test("upper upper-cases strings at any depth and leaves keys and other values alone")
    func upper() async throws {
        let input: ValueObject = [
            "greeting": .string("héllo straße"),
            "n": .number(3),
            "nested": .object(["list": .list([.string("a"), .object(["deep": .string("b")]), .bool(false)])]),
        ]
        let result = try await DemoPipelines().run(Self.request("upper", input))
        #expect(
            result.outputs == [
                [
                    "greeting": .string("HÉLLO STRASSE"),
                    "n": .number(3),
                    "nested": .object(["list": .list([.string("A"), .object(["deep": .string("B")]), .bool(false)])]),
                ]
            ]
        )
    }

    @Test("tokens streams RUNNING, one output event per word in order, then the joined text")
    func tokensStream() async throws {
        let events = try await Self.collect(
            DemoPipelines().runStreaming(
                Self.request("tokens", ["prompt": .string("  the quick\tbrown\nfox "), "delay_ms": .number(1)])
            )
        )
        let words = ["the", "quick", "brown", "fox"]
        var expected = [Self.running]
        expected += words.map {
            TriggerEvent.output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [["token": .string($0)]])
        }
        expected.append(.end(TriggerResult(outputs: [["text": .string("the quick brown fox")]])))
        #expect(events == expected)
    }

    @Test("tokens makes each event when it is asked for: nothing queues ahead of a consumer that stops reading")
    func tokensIsPullBased() async throws {
        let stream = DemoPipelines().runStreaming(
            Self.request("tokens", ["prompt": .string("a b c"), "delay_ms": .number(100)])
        )
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next() == Self.running)
        _ = try await iterator.next()  // "a": the first word comes without a delay
        // A producer that ran ahead would have "b" and "c" queued by now and hand "b" over at once. This
        // waits for something that must NOT happen (no event marks it), so it is a window.
        try await Task.sleep(for: Self.runAheadWindow)
        let asked = ContinuousClock.now
        let next = try await iterator.next()
        #expect(ContinuousClock.now - asked >= .milliseconds(100))
        #expect(next == .output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [["token": .string("b")]]))
    }

    @Test("tokens without streaming returns the joined text per batch element")
    func tokensRun() async throws {
        let result = try await DemoPipelines().run(
            Self.request("tokens", ["prompt": .string("a b"), "delay_ms": .number(0)], ["prompt": .string("c")])
        )
        #expect(result.outputs == [["text": .string("a b")], ["text": .string("c")]])
    }

    @Test("a batch of tokens streams elements one after another, tagged with batch_index")
    func tokensBatchStream() async throws {
        let events = try await Self.collect(
            DemoPipelines().runStreaming(
                Self.request(
                    "tokens",
                    ["prompt": .string("a b"), "delay_ms": .number(0)],
                    ["prompt": .string("c"), "delay_ms": .number(0)]
                )
            )
        )
        let outputs = events.compactMap { event -> ValueObject? in
            if case .output(_, let result) = event { return result.outputs.first }
            return nil
        }
        #expect(
            outputs == [
                ["token": .string("a"), "batch_index": .number(0)],
                ["token": .string("b"), "batch_index": .number(0)],
                ["token": .string("c"), "batch_index": .number(1)],
            ]
        )
        #expect(events.last == .end(TriggerResult(outputs: [["text": .string("a b")], ["text": .string("c")]])))
    }

    @Test("tokens without a string prompt is an invalid argument")
    func tokensNeedsPrompt() async {
        await #expect(throws: GatewayError(.invalidArgument, "the tokens pipeline needs a string input \"prompt\"")) {
            try await DemoPipelines().run(Self.request("tokens", ["prompt": .number(1)]))
        }
    }

    @Test("when the consumer of a token stream goes away, the run stops and the cancellation is observed")
    func tokensCancellation() async throws {
        let pipelines = DemoPipelines()
        let prompt = (1...1000).map { "w\($0)" }.joined(separator: " ")
        let consumer = Task {
            var seen: [TriggerEvent] = []
            for try await event in pipelines.runStreaming(
                Self.request("tokens", ["prompt": .string(prompt), "delay_ms": .number(60_000)])
            ) {
                seen.append(event)
            }
            return seen
        }
        // The first word comes at once; the second waits 60 s, so the run is inside Task.sleep when cancelled.
        consumer.cancel()
        await pipelines.cancellations.waitForCount(atLeast: 1)
        #expect(pipelines.cancellations.count == 1)
        #expect(
            pipelines.cancellations.cancelledRefs == [PipelineRef(namespace: "demo", pipeline: "tokens", release: "r1")]
        )
        // Whatever the consumer saw before it stopped, it never saw the end of a 1000-word run.
        let seen = (try? await consumer.value) ?? []
        #expect(!seen.contains { if case .end = $0 { true } else { false } })
    }

    @Test("a stream consumer that stops iterating after two events cancels the run too")
    func tokensEarlyExit() async throws {
        let pipelines = DemoPipelines()
        var seen: [TriggerEvent] = []
        for try await event in pipelines.runStreaming(
            Self.request("tokens", ["prompt": .string("a b c"), "delay_ms": .number(60_000)])
        ) {
            seen.append(event)
            if seen.count == 2 { break }
        }
        await pipelines.cancellations.waitForCount(atLeast: 1)
        #expect(seen == [Self.running, .output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [["token": .string("a")]])])
        #expect(pipelines.cancellations.count == 1)
    }

    @Test("sleep waits and echoes; cancelling the caller ends it with a cancelled error")
    func sleep() async throws {
        let pipelines = DemoPipelines()
        let input: ValueObject = ["ms": .number(5), "other": .string("x")]
        #expect(try await pipelines.run(Self.request("sleep", input)).outputs == [input])
        #expect(pipelines.cancellations.count == 0)

        let long = Task { try await pipelines.run(Self.request("sleep", ["ms": .number(600_000)])) }
        long.cancel()
        let error = await #expect(throws: GatewayError.self) { try await long.value }
        #expect(error?.code == .cancelled)
        #expect(pipelines.cancellations.count == 1)
    }

    @Test("sleep refuses negative and huge waits", arguments: [-1.0, 600_001.0])
    func sleepBounds(ms: Double) async {
        let error = await #expect(throws: GatewayError.self) {
            try await DemoPipelines().run(Self.request("sleep", ["ms": .number(ms)]))
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test("fail throws an application error with the message input and INTERNAL, or a default")
    func fail() async {
        await #expect(throws: GatewayError(.application(13), "boom")) {
            try await DemoPipelines().run(Self.request("fail", ["message": .string("boom")]))
        }
        await #expect(throws: GatewayError(.application(13), "pipeline failed")) {
            try await DemoPipelines().run(Self.request("fail", [:]))
        }
    }

    @Test("fail takes its google.rpc code as a number or a name; anything else is a bad input")
    func failCode() async {
        for (code, expected) in [(Value.number(9), 9), (.string("failed_precondition"), 9), (.string("5"), 5)] {
            await #expect(throws: GatewayError(.application(expected), "x")) {
                try await DemoPipelines().run(Self.request("fail", ["message": .string("x"), "code": code]))
            }
        }
        for bad in [Value.number(0), .number(17), .number(2.5), .string("NOPE"), .bool(true)] {
            let error = await #expect(throws: GatewayError.self) {
                try await DemoPipelines().run(Self.request("fail", ["code": bad]))
            }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test("streaming a non-streaming pipeline gives RUNNING then the end or the error")
    func nonStreamingPipelinesStream() async throws {
        let input: ValueObject = ["k": .string("v")]
        #expect(
            try await Self.collect(DemoPipelines().runStreaming(Self.request("echo", input)))
                == [Self.running, .end(TriggerResult(outputs: [input]))]
        )
        #expect(
            try await Self.collect(DemoPipelines().runStreaming(Self.request("fail", ["message": .string("x")])))
                == [Self.running, .error(GatewayError(.application(13), "x"))]
        )
    }

    @Test(
        "the event-loop form (the gateway's in-process sync path) answers as the async form: echo, upper, fail and an unknown pipeline at once, sleep in a task that cancelling stops"
    )
    func loopForm() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let pipelines = DemoPipelines()
        func run(_ request: TriggerRequest, _ cancellation: TriggerCancellation = TriggerCancellation()) async throws
            -> TriggerResult
        {
            try await pipelines.run(request, on: loop, cancellation: cancellation).get()
        }
        let input: ValueObject = ["greeting": .string("hi"), "n": .number(1)]
        #expect(try await run(Self.request("echo", input)).outputs == [input])
        #expect(try await run(Self.request("upper", input)).outputs == [["greeting": .string("HI"), "n": .number(1)]])
        await #expect(throws: GatewayError(.application(9), "x")) {
            try await run(Self.request("fail", ["message": .string("x"), "code": .string("FAILED_PRECONDITION")]))
        }
        await #expect(throws: GatewayError(.notFound, "pipeline \"nope\" not found in the demo runner")) {
            try await run(Self.request("nope", [:]))
        }
        let sleepInput: ValueObject = ["ms": .number(5)]
        #expect(try await run(Self.request("sleep", sleepInput)).outputs == [sleepInput])

        let cancellation = TriggerCancellation()
        let long = pipelines.run(Self.request("sleep", ["ms": .number(600_000)]), on: loop, cancellation: cancellation)
        cancellation.cancel()
        let error = await #expect(throws: GatewayError.self) { try await long.get() }
        #expect(error?.code == .cancelled)
        #expect(pipelines.cancellations.count == 1)
        await loop.shutdownGracefully()
    }

    @Test("an unknown pipeline is not found, in both modes")
    func unknownPipeline() async throws {
        let expected = GatewayError(.notFound, "pipeline \"nope\" not found in the demo runner")
        await #expect(throws: expected) { try await DemoPipelines().run(Self.request("nope", [:])) }
        #expect(try await Self.collect(DemoPipelines().runStreaming(Self.request("nope", [:]))) == [.error(expected)])
    }

    @Test("blob-info describes every blob, nested ones too, with a sha256 that matches sha256sum")
    func blobInfo() async throws {
        let big = randomBytes(2 << 20)
        let small: [UInt8] = Array("hello".utf8)
        let input: ValueObject = [
            "file": .blob(Blob(contentType: "application/x-test", fileName: "big.bin", bytes: ByteBuffer(bytes: big))),
            "plain": .string("not a blob"),
            "list": .list([.number(1), .blob(Blob(bytes: ByteBuffer(bytes: small)))]),
        ]
        let result = try await DemoPipelines().run(Self.request("blob-info", input))
        let expected: ValueObject = [
            "file": .object([
                "size": .number(Double(big.count)),
                "sha256": .string(try sha256sum(big)),
                "content_type": .string("application/x-test"),
                "file_name": .string("big.bin"),
            ]),
            "list": .list([
                .number(1),
                .object([
                    "size": .number(5),
                    "sha256": .string(try sha256sum(small)),
                    "content_type": .string("application/octet-stream"),
                ]),
            ]),
        ]
        #expect(result.outputs == [expected])
    }
}
