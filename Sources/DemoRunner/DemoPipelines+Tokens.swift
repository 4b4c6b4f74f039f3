import TriggerModel

extension DemoPipelines {
    /// `tokens` as a pull-based stream: each event is made when the consumer asks for it (after its
    /// `delay_ms`), so a client that stops reading stops the pipeline instead of queueing events without bound
    /// in front of it (issue 10, item 4: it queued +300 MB ahead of a non-reading client).
    ///
    /// A consumer that stops asking (cancelled, or it dropped the stream before the end) stops the run; it is
    /// counted by `cancellations` then, as the push-based pipelines count theirs.
    func tokensStream(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let cancellations = self.cancellations
        let state = TokensState(request: request, cancellations: cancellations)
        return AsyncThrowingStream(unfolding: {
            do {
                return try await state.next()
            } catch is CancellationError {
                guard !state.finished else { return nil }
                state.finished = true
                cancellations.record(request.ref)
                return .error(GatewayError(.cancelled, "the run of \(request.ref) was cancelled"))
            }
        })
    }

    /// The producer's position. `AsyncThrowingStream(unfolding:)` never runs two `next()` at once.
    private final class TokensState: @unchecked Sendable {
        let request: TriggerRequest
        let cancellations: CancellationProbe
        var startedStatus = false
        var finished = false
        var input = 0
        var word = 0
        var words: [String]?
        var delay = 0
        var outputs: [ValueObject] = []

        init(request: TriggerRequest, cancellations: CancellationProbe) {
            self.request = request
            self.cancellations = cancellations
        }

        /// The stream (and with it this state) was dropped before its end: the run is abandoned.
        deinit {
            if !finished { cancellations.record(request.ref) }
        }

        func next() async throws -> TriggerEvent? {
            if finished { return nil }
            if !startedStatus {
                startedStatus = true
                return .status(name: DemoPipelines.statusEvent, data: ["status": .string("RUNNING")])
            }
            do {
                while input < request.inputs.count {
                    let words = try currentWords()
                    if word < words.count {
                        if word > 0 || input > 0 {
                            try await Task.sleep(for: .milliseconds(delay))
                        } else {
                            try Task.checkCancellation()
                        }
                        var event: ValueObject = ["token": .string(words[word])]
                        if request.inputs.count > 1 { event["batch_index"] = .number(Double(input)) }
                        word += 1
                        return .output(name: DemoPipelines.outputEvent, outputs: [event])
                    }
                    outputs.append(["text": .string(words.joined(separator: " "))])
                    input += 1
                    word = 0
                    self.words = nil
                }
            } catch let error as GatewayError {
                finished = true
                return .error(error)
            }
            finished = true
            return .end(TriggerResult(outputs: outputs))
        }

        private func currentWords() throws(GatewayError) -> [String] {
            if let words { return words }
            let variables = request.inputs[input].variables
            guard case .string(let prompt) = variables["prompt"] else {
                throw GatewayError(.invalidArgument, "the tokens pipeline needs a string input \"prompt\"")
            }
            delay = try DemoPipelines.milliseconds(
                variables,
                "delay_ms",
                default: 10,
                max: DemoPipelines.maxDelayMilliseconds
            )
            let words = prompt.split(whereSeparator: \.isWhitespace).map(String.init)
            self.words = words
            return words
        }
    }
}
