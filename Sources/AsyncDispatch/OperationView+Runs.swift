package import OperationStore
package import TriggerModel
import NIOCore
import WireCodecs

extension PipelineRun {
    /// A stored operation as Instill's `PipelineRun` shows it: its state as a run status (cancelled is FAILED,
    /// Instill has no cancelled run, with "… was cancelled" as its error), triggered at `createdAt`, finished at
    /// `finishedAt`, its error message (``OperationView/error(_:)``, GetOperation's), the principal it was stored
    /// with, each batch item's variables (never its secrets; none when its stored input files are gone) and, once
    /// it succeeded, its outputs; a set of values over ``PipelineRun/valuesCap`` is left out. `namespaceOfUID`
    /// names the namespace of the `instill-requester-uid` the run was triggered with (its `requester`).
    package init(_ operation: Operation, namespaceOfUID: (String) -> String? = { _ in nil }) {
        let status: PipelineRunStatus =
            switch operation.state {
            case .queued: .queued
            case .running: .processing
            case .succeeded: .completed
            case .failed, .cancelled: .failed
            }
        // A run whose stored input files are gone (`lostInput`) shows no inputs rather than empty binaries.
        let inputs = operation.lostInput == nil ? operation.request.shownInputs : []
        let outputs = operation.state == .succeeded ? operation.result?.outputs ?? [] : []
        self.init(
            uid: operation.id,
            ref: operation.ref,
            status: status,
            startTime: operation.createdAt.storeMilliseconds,
            completeTime: operation.state.isFinished ? operation.finishedAt?.storeMilliseconds : nil,
            // A uid that names no namespace now (a reload removed it): no requester, rather than the principal.
            requester: operation.request.requesterUID.map { namespaceOfUID($0) ?? "" } ?? operation.request.principal
                ?? "",
            runner: operation.request.principal ?? "",
            inputs: Self.withinCap(inputs) ? inputs : [],
            outputs: Self.withinCap(outputs) ? outputs : [],
            error: OperationView.error(operation)?.message ?? ""
        )
    }

    /// Whether the JSON encoding of `objects` (a JSON array of them, binaries as data URIs) is at most
    /// ``valuesCap`` bytes. A binary whose base64 alone is over the cap decides without encoding anything.
    static func withinCap(_ objects: [ValueObject]) -> Bool {
        var blobBytes = 0
        for object in objects {
            for entry in object {
                if case .blob(let blob) = entry.value { blobBytes += blob.count }
            }
        }
        guard (blobBytes + 2) / 3 * 4 <= valuesCap else { return false }
        var scratch = ByteBuffer()
        JSONValueCodec.write(.list(objects.map { .object($0) }), into: &scratch)
        return scratch.readableBytes <= valuesCap
    }
}

/// Listing a pipeline's runs from the operation store (``PipelineRunQuery``).
package enum PipelineRuns {
    /// The page `query` asks for among the runs `principal` may see (`Operation.isVisible(to:)`, GetOperation's
    /// rule), newest first, and how many such runs there are among the pipeline's newest
    /// ``PipelineRunPage/scanLimit`` operations (all its runs when it has fewer).
    ///
    /// `list` is the store's `list` for the pipeline's filter: it is called with the store's largest page size,
    /// newest first, until the history or the scan limit ends, so one call reads at most
    /// ``PipelineRunPage/scanLimit`` operations and keeps only the page's.
    package static func page(
        _ query: PipelineRunQuery,
        visibleTo principal: String?,
        namespaceOfUID: (String) -> String? = { _ in nil },
        list: (_ pageSize: Int, _ pageToken: String?) async throws -> (operations: [Operation], nextPageToken: String?)
    ) async throws -> PipelineRunPage {
        var runs: [PipelineRun] = []
        var visible = 0
        var scanned = 0
        var token: String? = nil
        let first = query.offset
        repeat {
            let size = min(OperationPaging.maximumPageSize, PipelineRunPage.scanLimit - scanned)
            let page = try await list(size, token)
            for operation in page.operations where operation.isVisible(to: principal) {
                if visible >= first && runs.count < query.pageSize {
                    runs.append(PipelineRun(operation, namespaceOfUID: namespaceOfUID))
                }
                visible += 1
            }
            scanned += page.operations.count
            token = page.nextPageToken
        } while token != nil && scanned < PipelineRunPage.scanLimit
        return PipelineRunPage(runs: runs, totalSize: visible, page: query.page, pageSize: query.pageSize)
    }
}

extension AsyncOperations {
    /// A page of the runs of `query.ref`'s pipeline (every release) that `principal` may see
    /// (``PipelineRuns/page(_:visibleTo:namespaceOfUID:list:)``). Throws what the store's `list` throws (UNAVAILABLE).
    package func pipelineRuns(
        _ query: PipelineRunQuery, visibleTo principal: String?, namespaceOfUID: (String) -> String? = { _ in nil }
    ) async throws -> PipelineRunPage {
        let filter = OperationFilter(pipeline: OperationFilter.pipelineKey(query.ref))
        return try await PipelineRuns.page(query, visibleTo: principal, namespaceOfUID: namespaceOfUID) {
            pageSize, pageToken in
            try await list(filter: filter, pageSize: pageSize, pageToken: pageToken)
        }
    }
}
