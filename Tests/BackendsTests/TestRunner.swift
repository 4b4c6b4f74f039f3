import GatewayTestSupport
import NIOCore
import Synchronization
import TriggerModel

/// A tiny `TriggerRunner` for the transport tests, standing in for the demo pipelines. Pipelines (by name):
///
/// - `echo`: each input's variables back as its outputs (after `delay_ms`, if given);
/// - `meta`: one output with the transport-level fields the runner received (metadata, deadline, mode);
/// - `slow`: sleeps until cancelled (or `ms`), recording `slow.started` / `slow.cancelled`;
/// - `fail`: throws `GatewayError(.fromRPCCode(code), message)`, or a plain Swift error when `code` is absent;
/// - `stream`: `count` output events of `size` bytes (pulled lazily: production follows demand), then `.end`;
///   `forever: true` keeps going; a stream given up before its end records `stream.cancelled`.
///
/// The probe counts what happened on the runner's side, so tests can assert cancellation reached it.
struct TestRunner: TriggerRunner {
    let probe = Probe()

    func run(_ request: TriggerRequest) async throws -> TriggerResult {
        let first = request.inputs.first?.variables ?? ValueObject()
        switch request.ref.pipeline {
        case "echo":
            // A slow pipeline when asked (`delay_ms`): the backend's run time under test, not a wait.
            if let ms = first["delay_ms"]?.numberValue { try await Task.sleep(for: .milliseconds(Int(ms))) }
            return TriggerResult(outputs: request.inputs.map(\.variables))
        case "meta":
            var out = ValueObject()
            out["request_id"] = .string(request.requestID)
            out["traceparent"] = request.traceParent.map(Value.string) ?? .null
            out["tracestate"] = request.traceState.map(Value.string) ?? .null
            out["principal"] = request.principal.map(Value.string) ?? .null
            out["idempotency_key"] = request.idempotencyKey.map(Value.string) ?? .null
            out["deadline_ms"] =
                request.deadline.map { .number(Double(($0 - .now()).nanoseconds / 1_000_000)) } ?? .null
            out["mode"] = .string(request.mode.rawValue)
            out["release"] = request.ref.release.map(Value.string) ?? .null
            return TriggerResult(outputs: [out])
        case "slow":
            probe.bump("slow.started")
            do {
                // A run that lasts `ms` (a minute by default: until cancelled), the workload under test.
                try await Task.sleep(for: .milliseconds(Int(first["ms"]?.numberValue ?? 60_000)))
            } catch {
                probe.bump("slow.cancelled")
                throw error
            }
            return TriggerResult(outputs: [["slept": .bool(true)]])
        case "fail":
            let message = first["message"]?.stringValue ?? "failed"
            guard let code = first["code"]?.numberValue else { throw PlainError(message: message) }
            throw GatewayError(.fromRPCCode(Int(code)), message)
        default:
            throw GatewayError(.notFound, "no pipeline \(request.ref)")
        }
    }

    func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        guard request.ref.pipeline == "stream" else {
            return AsyncThrowingStream { continuation in
                let task = Task {
                    do {
                        continuation.yield(.end(try await run(request)))
                        continuation.finish()
                    } catch {
                        continuation.finish(throwing: error)
                    }
                }
                continuation.onTermination = { _ in task.cancel() }
            }
        }
        let first = request.inputs.first?.variables ?? ValueObject()
        let count = Int(first["count"]?.numberValue ?? 3)
        let size = Int(first["size"]?.numberValue ?? 0)
        let forever = first["forever"] == .bool(true)
        let delay = Int(first["delay_ms"]?.numberValue ?? 0)
        let state = Mutex(0)
        let tracker = StreamTracker(probe: probe)
        // Pull-based, so the number of events produced is the number the server asked for.
        return AsyncThrowingStream(unfolding: {
            let i = state.withLock { i in
                defer { i += 1 }
                return i
            }
            // The stream's pace between events (`delay_ms`): the producer's speed under test, not a wait.
            if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
            try Task.checkCancellation()
            if i == 0 { return .status(name: "PIPELINE_STATUS_UPDATED", data: ["state": .string("RUNNING")]) }
            if forever || i <= count {
                tracker.probe.bump("stream.produced")
                return .output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [Self.eventOutput(i, size: size)])
            }
            if i == count + 1 { return .end(TriggerResult(outputs: [["count": .number(Double(count))]])) }
            tracker.finished()
            return nil
        })
    }

    /// The output of event `i`: its index and `size` bytes of a pattern that depends on `i`.
    static func eventOutput(_ i: Int, size: Int) -> ValueObject {
        let payload = periodicBytes(count: size) { UInt8(truncatingIfNeeded: i &* 31 &+ $0) }
        return ["i": .number(Double(i)), "payload": .blob(Blob(bytes: payload))]
    }
}

/// `count` bytes, byte `k` being `byte(k % 256)`: a pattern of period 256 (as `byte` must have), made one period
/// at a time. Byte by byte, a debug build spent ~6 s of the unit suites' CPU on the megabytes these tests send
/// (perf of the parallel unit run), holding a thread of the cooperative pool meanwhile.
func periodicBytes(count: Int, _ byte: (Int) -> UInt8) -> ByteBuffer {
    let period = (0..<256).map(byte)
    var bytes = ByteBufferAllocator().buffer(capacity: count)
    var left = count
    while left > 0 {
        bytes.writeBytes(period.prefix(left))
        left -= min(left, 256)
    }
    return bytes
}

struct PlainError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Notices a stream that was given up before its end: the stream's closure (and this object with it) is
/// released when its consumer is cancelled or drops it, whether or not the closure was running then.
final class StreamTracker: Sendable {
    let probe: Probe
    private let done = Atomic(false)

    init(probe: Probe) { self.probe = probe }

    func finished() { done.store(true, ordering: .relaxed) }

    deinit {
        if !done.load(ordering: .relaxed) { probe.bump("stream.cancelled") }
    }
}

/// Counters the runner bumps and tests wait on.
final class Probe: Sendable {
    private let counters = Mutex<[String: Int]>([:])

    func bump(_ key: String) { counters.withLock { $0[key, default: 0] += 1 } }

    func count(_ key: String) -> Int { counters.withLock { $0[key, default: 0] } }

    /// Waits (bounded) until `key` reaches `atLeast`; returns whether it did. The bound only catches a hang:
    /// the wait ends as soon as the count is reached, and 20 s was once not enough for three stream events on a
    /// 2-core machine at load 34.
    func wait(for key: String, atLeast: Int = 1, within limit: Duration = .seconds(120)) async -> Bool {
        await eventually(within: limit, interval: .milliseconds(5)) { count(key) >= atLeast }
    }
}
