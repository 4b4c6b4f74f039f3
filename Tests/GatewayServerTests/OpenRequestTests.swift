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

    @Test("open(_:) puts a request in place of none, and replaces an open one whole; take() then moves it out")
    func openInPlace() {
        func request(_ id: String, path: String) -> OpenRequest {
            OpenRequest(
                record: RequestRecord(
                    requestID: id, frontend: .rest, httpVersion: "HTTP/1.1", method: "POST", path: path,
                    operation: "o", status: 200, durationNanoseconds: 0, peerAddress: "127.0.0.1:1"),
                start: .uptimeNanoseconds(7))
        }
        var slot = OpenRequest.none
        // Ids and paths of their own (not literals), as a frontend's are: heap strings the slot must own.
        for n in 0..<3 {
            slot.open(request(String(repeating: "r", count: 20 + n), path: "/" + String(repeating: "p", count: 30)))
            #expect(slot.isOpen)
            slot.record.endpoint = "e:\(n)"
            let taken = slot.take()
            #expect(!slot.isOpen)
            #expect(taken.record.requestID == String(repeating: "r", count: 20 + n))
            #expect(taken.record.path == "/" + String(repeating: "p", count: 30))
            #expect(taken.record.endpoint == "e:\(n)" && taken.start == .uptimeNanoseconds(7))
        }
        slot.open(request("first", path: "/1"))
        slot.record.pool = "pool"
        slot.open(request("second", path: "/2"))
        #expect(slot.record.requestID == "second" && slot.record.path == "/2" && slot.record.pool == nil)
        #expect(slot.take().isOpen && !slot.isOpen)
    }

    @Test("a finished request's record reaches the observers with its duration")
    func finish() {
        let seen = SeenRecords()
        let open = OpenRequest(
            record: RequestRecord(
                requestID: "r-2", frontend: .rest, httpVersion: "HTTP/1.1", method: "GET", path: "/", operation: "o",
                status: 200, durationNanoseconds: 0),
            start: .uptimeNanoseconds(1_000))
        FrontendServices.finish(open, observers: RequestObservers(others: [seen]), clock: { .uptimeNanoseconds(3_500) })
        #expect(seen.records.map(\.requestID) == ["r-2"])
        #expect(seen.records.first?.durationNanoseconds == 2_500)
    }
}

private final class SeenRecords: RequestObserver, @unchecked Sendable {
    var records: [RequestRecord] = []
    func requestFinished(_ record: RequestRecord) { records.append(record) }
}
