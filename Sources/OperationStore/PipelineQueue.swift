package import FoundationEssentials

/// One pipeline's part of the queue (`OperationStore.queuedByPipeline()`).
package struct PipelineQueue: Sendable, Equatable {
    /// `OperationFilter.pipelineKey`: `namespace/pipeline`, releases included.
    package var key: String
    /// Its queued operations (state `queued`, retries waiting for their time included).
    package var count: Int
    /// Since when its longest-waiting queued operation has waited: the earliest of their wait starts, each its
    /// `createdAt` while no runner has run it (`attempts` 0: a run handed back because no runner was reached does
    /// not start its wait again, so a runner down for an hour shows an hour), else its retry time (`notBefore`,
    /// which is in the future while its back-off lasts).
    package var oldestSince: Date

    package init(key: String, count: Int, oldestSince: Date) {
        self.key = key
        self.count = count
        self.oldestSince = oldestSince
    }
}
