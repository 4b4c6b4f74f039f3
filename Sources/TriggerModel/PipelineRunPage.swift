/// A request for one page of a pipeline's runs: Instill's `ListPipelineRuns` (`pipeline.pipeline.v1beta`) and
/// `GET /v1beta/{ns-kind}/{ns}/pipelines/{pipeline}/runs`. The runs are the gateway's stored operations of the
/// pipeline (async triggers, Craft AI executions, schedule ticks), newest first; sync and stream triggers keep no
/// record and are not runs here (README "Pipeline runs").
///
/// Paging is by page number, as Instill's: `page` counts from 0 and a page holds `page_size` runs (pipeline-backend
/// `pageSizeInRange`: unset or 0 is 10, above 100 is 100). A negative page or page size is INVALID_ARGUMENT
/// (AIP-158), where pipeline-backend would read it as 0 or the default.
///
/// `filter` (AIP-160) is not supported: a non-empty one is INVALID_ARGUMENT rather than ignored, which would
/// answer an unfiltered list as if filtered. `order_by` takes only the order the runs come in, newest first:
/// `create_time desc` or `start_time desc` (a run starts when it is triggered; either spelling, lowerCamelCase
/// too); anything else, `asc` included, is INVALID_ARGUMENT naming it (the store reads a pipeline's operations
/// newest first only).
package struct PipelineRunQuery: Sendable, Equatable {
    package static let defaultPageSize = 10
    package static let maximumPageSize = 100

    package var ref: PipelineRef
    /// From 0.
    package var page: Int
    /// From 1 to ``maximumPageSize``.
    package var pageSize: Int

    /// - Parameters:
    ///   - ref: the pipeline (`release` nil: runs of every release are listed).
    ///   - page: as sent, ≥ 0.
    ///   - pageSize: as sent; 0 is ``defaultPageSize``, above ``maximumPageSize`` is the maximum.
    ///   - filter: must be "".
    ///   - orderBy: "" or one of ``orderings``.
    /// - Throws: `GatewayError(.invalidArgument)` for an empty namespace or pipeline id, a negative page or page
    ///   size, a filter, or another order.
    package init(ref: PipelineRef, page: Int, pageSize: Int, filter: String, orderBy: String) throws(GatewayError) {
        guard !ref.namespace.isEmpty else { throw GatewayError(.invalidArgument, "namespace_id is required") }
        guard !ref.pipeline.isEmpty else { throw GatewayError(.invalidArgument, "pipeline_id is required") }
        guard page >= 0 else { throw GatewayError(.invalidArgument, "invalid page \(page): expected a number ≥ 0") }
        guard pageSize >= 0 else {
            throw GatewayError(.invalidArgument, "invalid page_size \(pageSize): expected a number ≥ 0")
        }
        guard filter.allSatisfy(\.isWhitespace) else {
            throw GatewayError(
                .invalidArgument,
                "filter \"\(filter)\" is not supported on the runs list: filter expressions are not supported; "
                    + "leave filter empty")
        }
        let order = orderBy.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard order.isEmpty || Self.orderings.contains(order) else {
            throw GatewayError(
                .invalidArgument,
                "order_by \"\(orderBy)\" is not supported on the runs list: runs are listed newest first; "
                    + "order_by takes \"create_time desc\" or \"start_time desc\" (or nothing)")
        }
        self.ref = ref
        self.page = page
        self.pageSize = pageSize == 0 ? Self.defaultPageSize : min(pageSize, Self.maximumPageSize)
    }

    /// The `order_by` values accepted (whitespace runs read as one space): the newest-first order itself.
    package static let orderings: Set<String> = [
        "create_time desc", "createTime desc", "start_time desc", "startTime desc",
    ]

    /// How many runs come before this page among those the caller may see: `page × pageSize`.
    package var offset: Int { page * pageSize }
}

/// Where a run is in its life, as Instill's `common.run.v1alpha.RunStatus` numbers it.
package enum PipelineRunStatus: Int32, Sendable, Equatable {
    case unspecified = 0
    case processing = 1
    case completed = 2
    case failed = 3
    case queued = 4

    /// Instill's JSON name of the value (`RUN_STATUS_COMPLETED`).
    package var name: String {
        switch self {
        case .unspecified: "RUN_STATUS_UNSPECIFIED"
        case .processing: "RUN_STATUS_PROCESSING"
        case .completed: "RUN_STATUS_COMPLETED"
        case .failed: "RUN_STATUS_FAILED"
        case .queued: "RUN_STATUS_QUEUED"
        }
    }
}

/// One run as `ListPipelineRuns` shows it (`pipeline.pipeline.v1beta.PipelineRun`). Every run came through the
/// gateway's API (`source` is `RUN_SOURCE_API`).
package struct PipelineRun: Sendable, Equatable {
    /// The operation id.
    package var uid: String
    package var ref: PipelineRef
    package var status: PipelineRunStatus
    /// When it was triggered (the operation was stored), Instill's `start_time`: milliseconds since 1970, the
    /// precision stores keep.
    package var startTime: Int64
    /// When it finished, in the same unit; nil while queued or running.
    package var completeTime: Int64?
    /// Instill's `requester_id`, "the namespace used to trigger the run" (instill-ai/protobufs `PipelineRun`): the
    /// namespace whose uid the caller sent as `instill-requester-uid` ("" when that uid names no namespace now),
    /// else the principal; "" for a schedule's run or a caller without one.
    package var requester: String
    /// Instill's `runner_id`, "the authenticated user": the principal it was triggered by; "" for a schedule's run
    /// or a caller without one.
    package var runner: String
    /// Each batch item's variables; empty when left out (over ``valuesCap``).
    package var inputs: [ValueObject]
    /// Each batch item's outputs once it completed; empty otherwise or when left out (over ``valuesCap``).
    package var outputs: [ValueObject]
    /// Why it failed (or that it was cancelled); "" otherwise.
    package var error: String

    package init(
        uid: String, ref: PipelineRef, status: PipelineRunStatus, startTime: Int64, completeTime: Int64? = nil,
        requester: String = "", runner: String = "", inputs: [ValueObject] = [], outputs: [ValueObject] = [],
        error: String = ""
    ) {
        self.uid = uid
        self.ref = ref
        self.status = status
        self.startTime = startTime
        self.completeTime = completeTime
        self.requester = requester
        self.runner = runner
        self.inputs = inputs
        self.outputs = outputs
        self.error = error
    }

    /// A list shows a run's inputs, and its outputs, only when that set's JSON encoding (binaries as data URIs) is
    /// at most this many bytes: a page of the largest size then stays under 100 × 2 × 64 KiB = 12.5 MiB, within
    /// the 32 MiB message cap, however large the stored values. A set over it is left out (an empty list).
    package static let valuesCap = 64 * 1024

    /// Instill's `pipeline_version`: the release the run was triggered on, `latest` for none.
    package var pipelineVersion: String { ref.release ?? "latest" }

    /// Instill's `total_duration` in milliseconds (trigger to finish); nil while not finished.
    package var totalDurationMilliseconds: Int64? {
        completeTime.map { max(0, $0 - startTime) }
    }
}

/// One page of a pipeline's runs.
package struct PipelineRunPage: Sendable, Equatable {
    package var runs: [PipelineRun]
    /// The runs the caller may see among those read (``PipelineRunPage/scanLimit``): all of them when the
    /// pipeline has fewer operations than that.
    package var totalSize: Int
    /// The page and page size applied.
    package var page: Int
    package var pageSize: Int

    package init(runs: [PipelineRun], totalSize: Int, page: Int, pageSize: Int) {
        self.runs = runs
        self.totalSize = totalSize
        self.page = page
        self.pageSize = pageSize
    }

    /// A list reads at most this many of a pipeline's newest operations (ten of the store's largest pages, as
    /// Craft AI's executions list): bounded work however long the history. `total_size` counts the visible runs
    /// among them, and pages past them are empty.
    package static let scanLimit = 10_000
}
