import AsyncDispatch
import FoundationEssentials
import NIOCore
import OperationStore
import Testing
import TriggerModel

/// `ListPipelineRuns` on the model side: an operation as a `PipelineRun` (state → RunStatus, times, values and
/// their cap) and the page arithmetic over the store's pages (``PipelineRuns/page(_:visibleTo:list:)``).
@Suite("pipeline runs: operations as Instill runs, paged by number over the store's newest-first pages")
struct PipelineRunsTests {
    static let ref = PipelineRef(namespace: "demo", pipeline: "echo")
    static let created = Date(timeIntervalSince1970: 1_700_000_000)

    static func operation(
        _ id: String, state: OperationState = .succeeded, principal: String? = "alice", release: String? = nil,
        inputs: [ValueObject] = [["prompt": .string("hi")]], outputs: [ValueObject] = [["prompt": .string("hi")]],
        error: GatewayError? = nil
    ) -> Operation {
        let ref = PipelineRef(namespace: ref.namespace, pipeline: ref.pipeline, release: release)
        return Operation(
            id: id, ref: ref, state: state,
            request: TriggerRequest(
                ref: ref, mode: .async,
                inputs: inputs.map { TriggerInput(variables: $0, secrets: ["key": "secret"]) }, principal: principal),
            result: state == .succeeded ? TriggerResult(outputs: outputs) : nil,
            error: error,
            createdAt: created,
            startedAt: state == .queued ? nil : created.addingTimeInterval(0.25),
            finishedAt: state.isFinished ? created.addingTimeInterval(1.5) : nil,
            notBefore: created, requestDigest: "")
    }

    @Test(
        "each operation state maps to Instill's RunStatus (cancelled is FAILED: Instill has no cancelled run)",
        arguments: [
            (OperationState.queued, PipelineRunStatus.queued, Int32(4)), (.running, .processing, 1),
            (.succeeded, .completed, 2),
            (.failed, .failed, 3), (.cancelled, .failed, 3),
        ])
    func status(state: OperationState, status: PipelineRunStatus, number: Int32) {
        let run = PipelineRun(Self.operation("op", state: state))
        #expect(run.status == status)
        #expect(run.status.rawValue == number)
    }

    @Test("a completed run: trigger time, finish time, duration in ms, requester, inputs without secrets, outputs")
    func completed() {
        let run = PipelineRun(Self.operation("op1"))
        #expect(run.uid == "op1")
        #expect(run.startTime == 1_700_000_000_000)
        #expect(run.completeTime == 1_700_000_001_500)
        #expect(run.totalDurationMilliseconds == 1500)
        #expect(run.requester == "alice")
        #expect(run.inputs == [["prompt": .string("hi")]])
        #expect(run.outputs == [["prompt": .string("hi")]])
        #expect(run.error == "")
        #expect(run.pipelineVersion == "latest")
        #expect(PipelineRun(Self.operation("op2", release: "v1")).pipelineVersion == "v1")
    }

    @Test("a failed run carries its error message, a cancelled one says so; neither has outputs nor a queued one times")
    func failedCancelledQueued() {
        let failed = PipelineRun(
            Self.operation("f", state: .failed, error: GatewayError(.failedPrecondition, "no such model")))
        #expect(failed.error == "no such model")
        #expect(failed.outputs.isEmpty)
        let cancelled = PipelineRun(Self.operation("c", state: .cancelled))
        #expect(cancelled.error == "operation c was cancelled")
        // A queued operation's last failed attempt is not the run's error: it has not failed.
        let queued = PipelineRun(
            Self.operation("q", state: .queued, error: GatewayError(.unavailable, "runner down")))
        #expect(queued.error == "")
        #expect(queued.completeTime == nil)
        #expect(queued.totalDurationMilliseconds == nil)
        #expect(PipelineRun(Self.operation("r", state: .running)).completeTime == nil)
    }

    /// `[{"v":"<n characters>"}]` is n + 10 bytes of JSON.
    static func values(jsonBytes: Int) -> [ValueObject] {
        [["v": .string(String(repeating: "x", count: jsonBytes - 10))]]
    }

    @Test("inputs and outputs are each shown up to 64 KiB of JSON and left out just past it")
    func valuesCap() {
        let cap = PipelineRun.valuesCap
        let atCap = PipelineRun(
            Self.operation("a", inputs: Self.values(jsonBytes: cap), outputs: Self.values(jsonBytes: cap)))
        #expect(atCap.inputs.count == 1)
        #expect(atCap.outputs.count == 1)
        let over = PipelineRun(
            Self.operation("b", inputs: Self.values(jsonBytes: cap + 1), outputs: Self.values(jsonBytes: cap + 1)))
        #expect(over.inputs.isEmpty)
        #expect(over.outputs.isEmpty)
        // One set over the cap leaves only that set out.
        let mixed = PipelineRun(Self.operation("c", inputs: Self.values(jsonBytes: cap + 1)))
        #expect(mixed.inputs.isEmpty)
        #expect(mixed.outputs.count == 1)
        // A binary counts as its data URI: 49,152 bytes are 65,536 of base64, over the cap with the rest.
        let blob = Blob(contentType: "application/octet-stream", bytes: ByteBuffer(repeating: 0, count: 49_152))
        #expect(PipelineRun(Self.operation("d", inputs: [["file": .blob(blob)]])).inputs.isEmpty)
        let small = Blob(contentType: "image/png", bytes: ByteBuffer(repeating: 0, count: 300))
        #expect(PipelineRun(Self.operation("e", inputs: [["file": .blob(small)]])).inputs.count == 1)
    }

    /// A fake store of `count` operations (ids `op<n>`, newest first: `op<count-1>` first), every third one of
    /// "bob"; it records the page sizes asked for.
    final class FakeStore: @unchecked Sendable {
        let operations: [Operation]
        var calls: [Int] = []

        init(count: Int) {
            operations = (0..<count).reversed().map {
                PipelineRunsTests.operation("op\($0)", principal: $0 % 3 == 0 ? "bob" : "alice")
            }
        }

        func list(_ pageSize: Int, _ token: String?) -> (operations: [Operation], nextPageToken: String?) {
            calls.append(pageSize)
            let start = token.map { Int($0)! } ?? 0
            let end = min(start + pageSize, operations.count)
            return (Array(operations[start..<end]), end < operations.count ? String(end) : nil)
        }
    }

    static func page(_ store: FakeStore, page: Int, pageSize: Int, principal: String? = "alice") async throws
        -> PipelineRunPage
    {
        let query = try PipelineRunQuery(ref: ref, page: page, pageSize: pageSize, filter: "", orderBy: "")
        return try await PipelineRuns.page(query, visibleTo: principal) { store.list($0, $1) }
    }

    @Test("pages by number over the caller's runs only, newest first; total_size counts them; past the end is empty")
    func paging() async throws {
        // 30 operations: 20 of alice (ids not divisible by 3), 10 of bob.
        let store = FakeStore(count: 30)
        let first = try await Self.page(store, page: 0, pageSize: 8)
        #expect(first.runs.map(\.uid) == ["op29", "op28", "op26", "op25", "op23", "op22", "op20", "op19"])
        #expect(first.totalSize == 20)
        #expect((first.page, first.pageSize) == (0, 8))
        let last = try await Self.page(store, page: 2, pageSize: 8)
        #expect(last.runs.map(\.uid) == ["op5", "op4", "op2", "op1"])
        #expect(last.totalSize == 20)
        #expect(try await Self.page(store, page: 3, pageSize: 8).runs.isEmpty)
        let bob = try await Self.page(store, page: 0, pageSize: 100, principal: "bob")
        #expect(bob.runs.count == 10)
        #expect(bob.runs.allSatisfy { $0.requester == "bob" })
        #expect(try await Self.page(store, page: 0, pageSize: 10, principal: nil).totalSize == 0)
    }

    @Test("a list reads at most 10,000 operations, in the store's largest pages, however long the history")
    func scanLimit() async throws {
        let store = FakeStore(count: 10_001)
        let page = try await Self.page(store, page: 0, pageSize: 100, principal: "bob")
        #expect(store.calls == Array(repeating: OperationPaging.maximumPageSize, count: 10))
        // bob's among op10000 … op1: ids divisible by 3 from 9999 down to 3.
        #expect(page.totalSize == 3333)
        let exact = FakeStore(count: 10_000)
        #expect(try await Self.page(exact, page: 0, pageSize: 1, principal: "bob").totalSize == 3334)
        #expect(exact.calls.count == 10)
    }
}
