package import Logging

/// The access log: one `info` line per finished request, every field of its `RequestRecord` as swift-log
/// metadata (the handler formats it: logfmt or JSON, see `LineLogHandler`).
///
/// Keys: `request_id`, `frontend` (rest | grpc), `protocol` (HTTP/1.1 | HTTP/2), `method`, `path`,
/// `operation`, `status`, `bytes_in`, `bytes_out`, `duration_us` (microseconds from the request head's
/// arrival to the end of the exchange); when known: `grpc_status`, `principal`, `namespace`, `pipeline`,
/// `route`, `pool`, `endpoint`, `mode`, `trace_id`, and `response_flags=DC` (Envoy's flag for "downstream
/// connection termination") when the client went away before the answer's end. Find a request by the `request-id` its client got back:
/// `grep request_id=<id>`.
package struct AccessLog: RequestObserver {
    private let logger: Logger

    /// `logger`: the gateway's; its level decides (the lines are at `info`).
    package init(logger: Logger) {
        self.logger = logger
    }

    package func requestFinished(_ record: RequestRecord) {
        // Skipped whole, metadata included, when the level leaves `info` out.
        guard logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = [
            "request_id": .string(record.requestID),
            "frontend": .string(record.frontend.rawValue),
            "protocol": .string(record.httpVersion),
            "method": .string(record.method),
            "path": .string(record.path),
            "operation": .string(record.operation),
            "status": .stringConvertible(record.status),
            "bytes_in": .stringConvertible(record.bytesIn),
            "bytes_out": .stringConvertible(record.bytesOut),
            "duration_us": .stringConvertible(record.durationNanoseconds / 1000),
        ]
        if let value = record.grpcStatus { metadata["grpc_status"] = .stringConvertible(value) }
        if let value = record.principal { metadata["principal"] = .string(value) }
        if let value = record.namespace { metadata["namespace"] = .string(value) }
        if let value = record.pipeline { metadata["pipeline"] = .string(value) }
        if let value = record.route { metadata["route"] = .string(value) }
        if let value = record.pool { metadata["pool"] = .string(value) }
        if let value = record.endpoint { metadata["endpoint"] = .string(value) }
        if let value = record.mode { metadata["mode"] = .string(value) }
        if let value = record.traceID { metadata["trace_id"] = .string(value) }
        if record.downstreamDisconnected { metadata["response_flags"] = .string("DC") }
        logger.info("request", metadata: metadata)
    }
}
