/// What hears of every request (``RequestRecord``), in order: the access log, the request metrics, then any other
/// observer (tests add their own). One object for the process's frontends, built once per configuration.
///
/// Why not an array of `any RequestObserver` (issue 11): each element taken from the array to be called was a copy
/// of the existential, a retain and a release (atomic operations) per observer and call, four per request with the
/// two built-in observers. Here they are constants of their own types, called directly; only the others, when
/// there are any, go through the array.
package final class RequestObservers: Sendable {
    let accessLog: AccessLog?
    let metrics: RequestMetrics?
    let others: [any RequestObserver]

    package init(accessLog: AccessLog? = nil, metrics: RequestMetrics? = nil, others: [any RequestObserver] = []) {
        self.accessLog = accessLog
        self.metrics = metrics
        self.others = others
    }

    /// No observer at all (a frontend built without a gateway: tests).
    package static let none = RequestObservers()

    /// Whether nothing would hear of a request (its duration is then not even measured).
    package var isEmpty: Bool { accessLog == nil && metrics == nil && others.isEmpty }

    /// A request's head arrived: ``RequestObserver/requestStarted(_:)`` of each, in order.
    package func requestStarted(_ frontend: RequestRecord.Frontend) {
        accessLog?.requestStarted(frontend)
        metrics?.requestStarted(frontend)
        if !others.isEmpty {
            for observer in others { observer.requestStarted(frontend) }
        }
    }

    /// A request ended: ``RequestObserver/requestFinished(_:)`` of each, in order.
    package func requestFinished(_ record: RequestRecord) {
        accessLog?.requestFinished(record)
        metrics?.requestFinished(record)
        if !others.isEmpty {
            for observer in others { observer.requestFinished(record) }
        }
    }
}
