@testable import GatewayServer
import NIOCore
import Observability
import Testing

/// ``OpenRequest/none``, what a frontend holds between requests instead of an Optional (branch hotpath5): not open,
/// and `take()` moves an open request out whole, leaving `none`.
@Suite("OpenRequest: none and take")
struct OpenRequestTests {
    @Test("none is not open; take() moves the open request out, leaves none, and takes none from none")
    func noneAndTake() {
        #expect(!OpenRequest.none.isOpen)
        var open = OpenRequest(
            record: RequestRecord(
                requestID: "r-1", frontend: .grpc, httpVersion: "HTTP/2", method: "POST", path: "/p", operation: "o",
                status: 200, durationNanoseconds: 0, peerAddress: "127.0.0.1:1"),
            start: .uptimeNanoseconds(42))
        open.record.endpoint = "e:1"
        open.sentHead = true
        let taken = open.take()
        #expect(taken.isOpen && !open.isOpen)
        #expect(taken.record.requestID == "r-1" && taken.record.endpoint == "e:1" && taken.sentHead)
        #expect(taken.start == .uptimeNanoseconds(42))
        #expect(!open.take().isOpen)
    }

    @Test("a finished request's record reaches the observers with its duration")
    func finish() {
        let seen = SeenRecords()
        let open = OpenRequest(
            record: RequestRecord(
                requestID: "r-2", frontend: .rest, httpVersion: "HTTP/1.1", method: "GET", path: "/", operation: "o",
                status: 200, durationNanoseconds: 0),
            start: .uptimeNanoseconds(1_000))
        FrontendServices.finish(open, observers: [seen], clock: { .uptimeNanoseconds(3_500) })
        #expect(seen.records.map(\.requestID) == ["r-2"])
        #expect(seen.records.first?.durationNanoseconds == 2_500)
    }
}

private final class SeenRecords: RequestObserver, @unchecked Sendable {
    var records: [RequestRecord] = []
    func requestFinished(_ record: RequestRecord) { records.append(record) }
}
