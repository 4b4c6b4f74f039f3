import NIOCore
import Observability
import TriggerModel
import WireCodecs

/// HTTP semantics applied around routing, the same for both HTTP versions: HEAD, and the `Accept`
/// negotiation of the `:trigger` route.
extension RESTRequestHead {
    /// Decides what a request head asks for (see `route`), answering HEAD like GET without the body.
    ///
    /// RFC 9110 §9.3.2: the server sends the header fields it would send for GET, content-length
    /// included, and no content. That holds for every answer to a HEAD, errors too: a 404 or 405 body
    /// would be read by an HTTP/1.1 client as the start of its next response, and on HTTP/2 DATA after a
    /// HEAD is a malformed response (RFC 9113 §8.1.1).
    /// `collector`, `use`: where a head that reads a body puts them (``RESTStart/readBody``).
    func start(
        services: FrontendServices, requestID: String, record: inout RequestRecord, arrival: NIODeadline,
        collector: inout RESTBodyCollector, use: inout PendingBodyUse
    ) -> RESTStart {
        let start = route(
            services: services, requestID: requestID, record: &record, arrival: arrival, collector: &collector,
            use: &use)
        guard method == "HEAD" else { return start }
        switch start {
        case .respond(var response, let close):
            response.omitsBody = true
            return .respond(response, closeConnection: close)
        case .run(let work):
            return .run(
                RESTWork(requestID: work.requestID) {
                    var response = await work.run()
                    response.omitsBody = true
                    return response
                }
            )
        case .readBody:
            // No HEAD route reads a body (triggers are POST only, so HEAD on them is a 405).
            return start
        }
    }

    /// The `:trigger` route answers JSON (sync) or SSE (stream), chosen by `Accept` (RFC 9110 §12.5.1):
    /// the type with the higher weight wins; on a tie SSE wins only when the client named it (not through a
    /// wildcard), so `*/*` and no header keep JSON while `text/event-stream, application/json` keeps SSE.
    /// Nil when neither is acceptable: the caller answers 406 (RFC 9110 §15.5.7).
    static func negotiateTriggerMode(_ accept: AcceptHeader) -> TriggerMode? {
        let json = accept.quality(of: "application/json")
        let sse = accept.quality(of: "text/event-stream")
        if json == 0 && sse == 0 { return nil }
        if sse > json || (sse == json && accept.namesExplicitly("text/event-stream")) { return .stream }
        return .sync
    }
}
