import TriggerModel

extension DemoPipelines {
    /// `flood`'s inputs: how many bytes in total, in events of how many characters.
    static func floodPlan(_ request: TriggerRequest) throws(GatewayError) -> (bytes: Int, chunk: Int) {
        let variables = request.inputs.first?.variables ?? [:]
        let bytes = try milliseconds(variables, "bytes", default: 1 << 20, max: maxFloodBytes)
        let chunk = try milliseconds(variables, "chunk", default: 16 << 10, max: maxFloodChunk)
        guard chunk > 0 else { throw GatewayError(.invalidArgument, "\"chunk\" must be at least 1") }
        return (bytes, chunk)
    }

    /// A pull-based stream: each event is made when the consumer asks for it, so a slow consumer holds
    /// at most one event here (the point of the pipeline is to test everyone else's buffers).
    func flood(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let plan: (bytes: Int, chunk: Int)
        do {
            plan = try Self.floodPlan(request)
        } catch {
            return AsyncThrowingStream {
                $0.yield(.error(error)); $0.finish()
            }
        }
        let cancellations = self.cancellations
        let ref = request.ref
        let state = FloodState(total: plan.bytes, chunk: plan.chunk, ref: ref, cancellations: cancellations)
        return AsyncThrowingStream(unfolding: {
            if Task.isCancelled, !state.finished {
                state.finished = true
                cancellations.record(ref)
                return .error(GatewayError(.cancelled, "the run of \(ref) was cancelled"))
            }
            return state.next()
        })
    }

    /// The producer's position. `AsyncThrowingStream(unfolding:)` never runs two `next()` at once.
    private final class FloodState: @unchecked Sendable {
        let total: Int
        let payload: Value
        let chunk: Int
        var sent = 0
        var events = 0
        var finished = false
        var startedStatus = false
        let ref: PipelineRef
        let cancellations: CancellationProbe

        init(total: Int, chunk: Int, ref: PipelineRef, cancellations: CancellationProbe) {
            self.total = total
            self.chunk = chunk
            self.payload = .string(String(repeating: "x", count: chunk))
            self.ref = ref
            self.cancellations = cancellations
        }

        /// The consumer dropped the stream before its end (a reset stream, a closed connection): the run
        /// stopped, and is counted as the pipelines that run in a task count theirs.
        deinit {
            if !finished { cancellations.record(ref) }
        }

        func next() -> TriggerEvent? {
            if finished { return nil }
            if !startedStatus {
                startedStatus = true
                return .status(name: DemoPipelines.statusEvent, data: ["status": .string("RUNNING")])
            }
            guard sent < total else {
                finished = true
                return .end(
                    TriggerResult(outputs: [["bytes": .number(Double(sent)), "events": .number(Double(events))]])
                )
            }
            let size = min(chunk, total - sent)
            sent += size
            events += 1
            let value = size == chunk ? payload : .string(String(repeating: "x", count: size))
            return .output(name: DemoPipelines.outputEvent, outputs: [["chunk": value]])
        }
    }
}
