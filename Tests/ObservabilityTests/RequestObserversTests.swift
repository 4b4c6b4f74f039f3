import GatewayTestSupport
import Logging
import Observability
import Synchronization
import Testing
import TriggerModel

/// ``RequestObservers`` calls the built-in observers directly and the others through their array, in one order.
@Suite("RequestObservers")
struct RequestObserversTests {
    /// Appends what it hears, tagged, to a log shared with the other test observers.
    struct Tagged: RequestObserver {
        let tag: String
        let log: Mutex<[String]>.Shared

        func requestStarted(_ frontend: RequestRecord.Frontend) { log.append("\(tag) started \(frontend)") }
        func requestFinished(_ record: RequestRecord) { log.append("\(tag) finished \(record.requestID)") }
    }

    @Test("the metrics, then the others in order, hear both ends of a request; none is empty")
    func order() {
        #expect(RequestObservers.none.isEmpty)
        let metrics = GatewayMetrics()
        let log = Mutex<[String]>.Shared()
        let observers = RequestObservers(
            accessLog: AccessLog(logger: Logger(label: "test")), metrics: metrics.requests,
            others: [Tagged(tag: "a", log: log), Tagged(tag: "b", log: log)])
        #expect(!observers.isEmpty)
        #expect(!RequestObservers(others: [Tagged(tag: "c", log: log)]).isEmpty)

        let inFlight = #"trigger_gateway_requests_in_flight{frontend="grpc"}"#
        observers.requestStarted(.grpc)
        #expect(Exposition(String(decoding: metrics.scrape(), as: UTF8.self)).samples[inFlight] == 1)
        observers.requestFinished(GatewayMetricsTests.record(.grpc, operation: "/p.S/M", grpcStatus: 0))
        let scrape = Exposition(String(decoding: metrics.scrape(), as: UTF8.self))
        #expect(scrape.samples[inFlight] == 0)
        #expect(scrape.samples.keys.contains { $0.hasPrefix("trigger_gateway_requests_total{frontend=\"grpc\"") })
        let heard = log.value
        #expect(heard.count == 4)
        #expect(heard.prefix(2) == ["a started grpc", "b started grpc"])
        #expect(heard[2].hasPrefix("a finished ") && heard[3].hasPrefix("b finished "))
    }
}

extension Mutex where Value == [String] {
    /// A log several observers append to: a class holding the mutex (a `Mutex` itself cannot be shared).
    final class Shared: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var value: [String] { lines.withLock { $0 } }
    }
}
