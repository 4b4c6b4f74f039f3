package import Observability
import Synchronization

/// A `RequestObserver` that keeps every record it is told of, for tests to find by request id.
package final class RecordingObserver: RequestObserver {
    private let records = Mutex<[RequestRecord]>([])

    package init() {}

    package func requestFinished(_ record: RequestRecord) {
        records.withLock { $0.append(record) }
    }

    package var all: [RequestRecord] { records.withLock { $0 } }

    /// The records of the request `id`, once at least one arrived (the record is told when the exchange ends,
    /// which may be just after the client has its answer); empty after `timeout`.
    package func records(of id: String, timeout: Duration = .seconds(5)) async throws -> [RequestRecord] {
        _ = await eventually(within: timeout, interval: .milliseconds(5)) { all.contains { $0.requestID == id } }
        return all.filter { $0.requestID == id }
    }
}
