package import NIOCore
package import TriggerModel

/// The bundled demo pipelines (API.md §6), runnable in-process by the gateway's embedded default and by the
/// `demo-runner` process over either backend transport.
///
/// Each works per batch element and ignores the namespace and release (routing already chose this runner):
/// - `echo`: the variables come back unchanged as outputs;
/// - `upper`: string values upper-cased, recursively through lists and objects;
/// - `tokens`: one `PIPELINE_OUTPUT_UPDATED` event `{"token": word}` per whitespace-separated word of
///   `prompt`, `delay_ms` apart (default 10), then `{"text": words joined by one space}`; with a batch of
///   more than one, elements stream one after another and each event also carries `batch_index`;
/// - `sleep`: waits `ms` milliseconds (cancellable), then echoes;
/// - `fail`: fails as a pipeline does (an application error, passed to the client unchanged and never
///   retried) with the `message` input (or "pipeline failed") and the google.rpc `code` input: a number
///   (`9`) or a name (`FAILED_PRECONDITION`, case-insensitive); INTERNAL when absent;
/// - `blob-info`: every blob, wherever it sits in a variable, replaced by
///   `{"size", "sha256", "content_type", "file_name"?}`; variables holding no blob are left out;
/// - `flood`: streams `bytes` (default 1 MiB) of `{"chunk": "xxx…"}` output events, `chunk` characters each
///   (default 16 KiB), as fast as the consumer takes them, then `{"bytes", "events"}`; for back-pressure tests.
///   It is produced on demand (nothing is queued ahead of the consumer), and so is `tokens`.
///
/// A cancelled run (the caller's task, or the consumer of `runStreaming`) stops at its next wait, is counted
/// by `cancellations`, and ends with `GatewayError(.cancelled)`; tests use the probe to see that a client's
/// disconnect really reached the backend.
package struct DemoPipelines: TriggerRunner {
    package let cancellations: CancellationProbe

    package static let names = ["echo", "upper", "tokens", "sleep", "fail", "blob-info", "flood"]
    package static let statusEvent = "PIPELINE_STATUS_UPDATED"
    package static let outputEvent = "PIPELINE_OUTPUT_UPDATED"
    /// Upper bounds on the waits a request can ask for, so a typo cannot park a runner for a day.
    package static let maxDelayMilliseconds = 60_000
    package static let maxSleepMilliseconds = 600_000
    package static let maxFloodBytes = 1 << 40
    package static let maxFloodChunk = 1 << 20

    package init(cancellations: CancellationProbe = CancellationProbe()) {
        self.cancellations = cancellations
    }

    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        try await execute(request, emit: { _ in })
    }

    /// The gateway's in-process sync path (issue 11: a call never leaves its connection's loop): a pipeline
    /// that neither waits nor hashes (``immediateResult(_:)``) is answered on `eventLoop` at once, with no task;
    /// `sleep`, `tokens` and `blob-info` (whose hashing of a large upload must not stall the loop) run in a
    /// task of their own, as every pipeline did before.
    package func run(
        _ request: TriggerRequest,
        on eventLoop: any EventLoop,
        cancellation: TriggerCancellation
    ) -> EventLoopFuture<TriggerResult> {
        do {
            guard let result = try immediateResult(request) else {
                return runInTask(request, on: eventLoop, cancellation: cancellation)
            }
            return eventLoop.makeSucceededFuture(result)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }

    /// Every pipeline streams: a `RUNNING` status first, then its own events, then `.end` (or `.error`).
    /// An unknown pipeline yields only the `.error`. Ending the consumption cancels the run.
    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: TriggerEvent.self)
        guard Self.names.contains(request.ref.pipeline) else {
            continuation.yield(.error(Self.unknownPipeline(request.ref)))
            continuation.finish()
            return stream
        }
        if request.ref.pipeline == "flood" {
            return flood(request)
        }
        if request.ref.pipeline == "tokens" {
            return tokensStream(request)
        }
        let task = Task {
            continuation.yield(.status(name: Self.statusEvent, data: ["status": .string("RUNNING")]))
            do {
                let result = try await execute(request) { continuation.yield($0) }
                continuation.yield(.end(result))
            } catch let error as GatewayError {
                continuation.yield(.error(error))
            } catch {
                continuation.yield(.error(GatewayError(.internalError, "demo runner: \(error)")))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// The outcome of a pipeline that neither waits nor hashes (`echo`, `upper`, `fail`, `flood`'s unary
    /// form, an unknown pipeline's error), computed now; nil for the others.
    private func immediateResult(_ request: TriggerRequest) throws(GatewayError) -> TriggerResult? {
        switch request.ref.pipeline {
        case "echo":
            return TriggerResult(outputs: request.inputs.map(\.variables))
        case "upper":
            return TriggerResult(outputs: request.inputs.map { Self.uppercased($0.variables) })
        case "fail":
            let first = request.inputs.first?.variables ?? ValueObject()
            let message = request.inputs.lazy.compactMap { $0.variables["message"]?.stringValue }.first
            throw GatewayError(.application(try Self.rpcCode(first["code"])), message ?? "pipeline failed")
        case "flood":
            let plan = try Self.floodPlan(request)
            return TriggerResult(outputs: [["bytes": .number(Double(plan.bytes)), "events": .number(0)]])
        case "tokens", "sleep", "blob-info":
            return nil
        default:
            throw Self.unknownPipeline(request.ref)
        }
    }

    private func execute(
        _ request: TriggerRequest,
        emit: @Sendable (TriggerEvent) -> Void
    ) async throws(GatewayError) -> TriggerResult {
        if let result = try immediateResult(request) { return result }
        do {
            switch request.ref.pipeline {
            case "tokens":
                return try await tokens(request, emit: emit)
            case "sleep":
                for input in request.inputs {
                    let ms = try Self.milliseconds(input.variables, "ms", default: 0, max: Self.maxSleepMilliseconds)
                    try await Task.sleep(for: .milliseconds(ms))
                }
                return TriggerResult(outputs: request.inputs.map(\.variables))
            case "blob-info":
                return TriggerResult(outputs: request.inputs.map { Self.blobInfo($0.variables) })
            default:
                throw Self.unknownPipeline(request.ref)
            }
        } catch let error as GatewayError {
            throw error
        } catch is CancellationError {
            cancellations.record(request.ref)
            throw GatewayError(.cancelled, "the run of \(request.ref) was cancelled")
        } catch {
            throw GatewayError(.internalError, "demo runner: \(error)")
        }
    }

    private func tokens(_ request: TriggerRequest, emit: @Sendable (TriggerEvent) -> Void) async throws
        -> TriggerResult
    {
        var outputs: [ValueObject] = []
        for (index, input) in request.inputs.enumerated() {
            guard case .string(let prompt) = input.variables["prompt"] else {
                throw GatewayError(.invalidArgument, "the tokens pipeline needs a string input \"prompt\"")
            }
            let delay = try Self.milliseconds(input.variables, "delay_ms", default: 10, max: Self.maxDelayMilliseconds)
            let words = prompt.split(whereSeparator: \.isWhitespace).map(String.init)
            for (n, word) in words.enumerated() {
                if n > 0 || index > 0 {
                    try await Task.sleep(for: .milliseconds(delay))
                } else {
                    try Task.checkCancellation()
                }
                var event: ValueObject = ["token": .string(word)]
                if request.inputs.count > 1 { event["batch_index"] = .number(Double(index)) }
                emit(.output(name: Self.outputEvent, outputs: [event]))
            }
            outputs.append(["text": .string(words.joined(separator: " "))])
        }
        return TriggerResult(outputs: outputs)
    }

    /// The `code` input of `fail`: a google.rpc code number in 1...16 or its name; INTERNAL when absent.
    static func rpcCode(_ value: Value?) throws(GatewayError) -> Int {
        let names = GatewayError.Code.rpcCodeNames
        switch value {
        case nil, .null?:
            return 13
        case .number(let n, _)? where n >= 1 && n <= 16 && n == n.rounded():
            return Int(n)
        case .string(let s)?:
            if let n = Int(s), (1...16).contains(n) { return n }
            if let n = names.firstIndex(of: s.uppercased()), n > 0 { return n }
        default:
            break
        }
        throw GatewayError(
            .invalidArgument,
            "\"code\" must be a google.rpc code: a number from 1 to 16 or a name such as FAILED_PRECONDITION"
        )
    }

    static func unknownPipeline(_ ref: PipelineRef) -> GatewayError {
        GatewayError(.notFound, "pipeline \"\(ref.pipeline)\" not found in the demo runner")
    }

    /// A whole number of milliseconds from a number (or numeric string) input, checked against `0...max`.
    static func milliseconds(_ variables: ValueObject, _ key: String, default value: Int, max: Int) throws(GatewayError)
        -> Int
    {
        let number: Double
        switch variables[key] {
        case nil, .null?: return value
        case .number(let n, _)?: number = n
        case .largeInteger(let i)?: number = i.doubleValue
        case .string(let s)?:
            guard let n = Double(s) else { throw GatewayError(.invalidArgument, "\"\(key)\" must be a number") }
            number = n
        default: throw GatewayError(.invalidArgument, "\"\(key)\" must be a number")
        }
        guard number >= 0, number <= Double(max) else {
            throw GatewayError(.invalidArgument, "\"\(key)\" must be between 0 and \(max)")
        }
        return Int(number)
    }

    static func uppercased(_ object: ValueObject) -> ValueObject {
        ValueObject(object.map { (key: $0.key, value: uppercased($0.value)) })
    }

    static func uppercased(_ value: Value) -> Value {
        switch value {
        case .string(let s): .string(s.uppercased())
        case .list(let items): .list(items.map(uppercased))
        case .object(let object): .object(uppercased(object))
        case .null, .bool, .number, .largeInteger, .blob: value
        }
    }
}

extension DemoPipelines: PipelineDescribing {
    /// `blob-info` declares one input, `file`, of data type `file` (so Craft AI's SDK uploads it as a file);
    /// the others take any inputs and declare none. An unknown pipeline is `.notFound`.
    package func describePipeline(_ ref: PipelineRef) async throws -> PipelineDescription {
        guard Self.names.contains(ref.pipeline) else { throw Self.unknownPipeline(ref) }
        switch ref.pipeline {
        case "blob-info":
            return PipelineDescription(inputs: [.init(name: "file", dataType: "file")])
        default:
            return PipelineDescription()
        }
    }
}
