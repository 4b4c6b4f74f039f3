package import Logging
import Synchronization
import ThreadLocals
package import TriggerModel

/// The access log: one `info` line per finished request, every field of its `RequestRecord` as swift-log
/// metadata (the handler formats it: logfmt or JSON, see `LineLogHandler`).
///
/// Keys: `request_id`, `frontend` (rest | grpc), `protocol` (HTTP/1.1 | HTTP/2), `method`, `path`,
/// `operation`, `status`, `bytes_in`, `bytes_out`, `duration_us` (microseconds from the request head's
/// arrival to the end of the exchange); when known: `grpc_status`, `principal`, `namespace`, `pipeline`,
/// `route`, `pool`, `endpoint`, `mode`, `trace_id`, `peer.address` (the client's `host:port`); and always
/// `response_flags`, Envoy's `%RESPONSE_FLAGS%` (``RequestRecord/responseFlags``): `-` for none; `UF`, `UT`, `UC`,
/// `UO`, `UPE` when the answer is a failure the gateway made on a backend's behalf (``UpstreamFailure``); `DC` when
/// the client went away, `SI` when the gateway gave up on a client that read nothing, `DT` when a gRPC call was
/// answered DEADLINE_EXCEEDED after the client's own `grpc-timeout` had passed (``RequestRecord/Termination``);
/// both joined by `,`. Also when known: `operation.id` (the async operation the request created, read or
/// cancelled), `user_agent`, and a backend call's `attempts`, `upstream_status`, `upstream_duration_us` and
/// `queue_duration_us` (``UpstreamDetail``); `cut_by=shutdown` on a request the gateway's stop cut at
/// `timeouts.shutdown_grace`. Find a request by the `request-id` its client got back:
/// `grep request_id=<id>`.
///
/// With the gateway's own handler (`LineLogHandler`, adding no metadata of its own) a line is formatted
/// straight into a byte buffer kept per thread and reused (``fields(of:into:)``): no metadata dictionary, no
/// boxed numbers, no `String` per value (issue 11: the dictionary path was ~10 % of an async accept's
/// instructions). Any other handler gets the metadata (``metadata(of:)``); both give the same line.
package struct AccessLog: RequestObserver {
    private let logger: Logger
    /// `log.access`: nil, always written (at the logger's level).
    private let enabled: AccessLogSwitch?
    /// The gateway's line handler when it writes the caller's fields as they are (nil: the metadata path).
    private let lineHandler: LineLogHandler?
    /// One line buffer per thread (the event loops, the async dispatcher's threads), reused line after line and
    /// shared by every `AccessLog` of the process (a line is written whole before the next: no state between lines).
    /// Static: a key per instance ran out of POSIX's 1024 thread-specific keys (see ``ThreadLocalObject``).
    private static let buffers = ThreadLocalObject<LineBuffer>()

    /// `logger`: `serve`'s is labelled `access`, at a fixed `info` (not the application log's `log.level`), and
    /// `enabled` (`log.access`) switches it; the lines are at `info`, so a logger whose level leaves `info` out
    /// writes none either.
    package init(logger: Logger, enabled: AccessLogSwitch? = nil) {
        self.logger = logger
        self.enabled = enabled
        if let handler = logger.handler as? LineLogHandler, handler.addsNoMetadata, logger.metadataProvider == nil {
            self.lineHandler = handler
        } else {
            self.lineHandler = nil
        }
    }

    package func requestFinished(_ record: RequestRecord) {
        // Skipped whole, metadata included, when switched off or the level leaves `info` out.
        guard enabled?.isOn ?? true, logger.logLevel <= .info else { return }
        guard let lineHandler else {
            logger.info("request", metadata: Self.metadata(of: record))
            return
        }
        Self.buffers.withValue(makingWith: LineBuffer.init) { buffer in
            lineHandler.writeLine(level: .info, message: "request", into: &buffer.bytes) {
                Self.fields(of: record, into: &$0)
            }
        }
    }

    /// The record's fields, in key order (the order `LineLogHandler` sorts metadata into), typed as
    /// ``metadata(of:)`` types them.
    package static func fields(of record: RequestRecord, into out: inout LineWriter) {
        let upstream = record.upstream
        if upstream.attempts > 0 { out.field("attempts", integer: upstream.attempts) }
        out.field("bytes_in", integer: record.bytesIn)
        out.field("bytes_out", integer: record.bytesOut)
        if record.cutAtShutdown { out.field("cut_by", string: "shutdown") }
        out.field("duration_us", integer: Int(record.durationNanoseconds / 1000))
        if let value = record.endpoint { out.field("endpoint", string: value) }
        out.field("frontend", string: record.frontend.rawValue)
        if let value = record.grpcStatus { out.field("grpc_status", integer: value) }
        out.field("method", string: record.method)
        if let value = record.mode { out.field("mode", string: value) }
        if let value = record.namespace { out.field("namespace", string: value) }
        out.field("operation", string: record.operation)
        if let value = record.operationID { out.field("operation.id", string: value) }
        out.field("path", string: record.path)
        if let value = record.peerAddress { out.field("peer.address", string: value) }
        if let value = record.pipeline { out.field("pipeline", string: value) }
        if let value = record.pool { out.field("pool", string: value) }
        if let value = record.principal { out.field("principal", string: value) }
        out.field("protocol", string: record.httpVersion)
        if let value = upstream.queueNanoseconds { out.field("queue_duration_us", integer: Int(value / 1000)) }
        out.field("request_id", string: record.requestID)
        out.field("response_flags", string: record.responseFlags)
        if let value = record.route { out.field("route", string: value) }
        out.field("status", integer: record.status)
        if let value = record.traceID { out.field("trace_id", string: value) }
        if let value = upstream.lastTryNanoseconds { out.field("upstream_duration_us", integer: Int(value / 1000)) }
        if let value = upstream.status { out.field("upstream_status", integer: value) }
        if let value = record.userAgent { out.field("user_agent", string: value) }
    }

    /// The record as swift-log metadata, for a handler other than the gateway's own.
    package static func metadata(of record: RequestRecord) -> Logger.Metadata {
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
        if let value = record.traceID { metadata["trace_id"] = .string(String(value)) }
        metadata["response_flags"] = .string(record.responseFlags)
        if let value = record.peerAddress { metadata["peer.address"] = .string(value) }
        if let value = record.operationID { metadata["operation.id"] = .string(value) }
        add(record.upstream, to: &metadata)
        if let value = record.userAgent { metadata["user_agent"] = .string(value) }
        if record.cutAtShutdown { metadata["cut_by"] = .string("shutdown") }
        return metadata
    }

    /// The upstream fields of `upstream` (``UpstreamDetail``) as metadata, those it knows: on the access line and on
    /// the async dispatcher's `operation run` line, the same keys and units (microseconds).
    package static func add(_ upstream: UpstreamDetail, to metadata: inout Logger.Metadata) {
        if upstream.attempts > 0 { metadata["attempts"] = .stringConvertible(upstream.attempts) }
        if let value = upstream.status { metadata["upstream_status"] = .stringConvertible(value) }
        if let value = upstream.lastTryNanoseconds {
            metadata["upstream_duration_us"] = .stringConvertible(value / 1000)
        }
        if let value = upstream.queueNanoseconds { metadata["queue_duration_us"] = .stringConvertible(value / 1000) }
    }

    /// One line's bytes (as `LineLogHandler.line` lays them out), for tests comparing the two paths.
    package static func line(
        of record: RequestRecord, format: LineFormat, label: String, timestamp: (seconds: Int, milliseconds: Int)
    ) -> [UInt8] {
        var out = LineWriter(format: format)
        out.begin(timestamp: timestamp, level: .info, label: label, message: "request")
        fields(of: record, into: &out)
        out.end()
        return out.bytes
    }
}

/// A thread's reusable line buffer (``AccessLog``): only ever touched by the thread whose slot holds it.
private final class LineBuffer: @unchecked Sendable {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(512) }
}

/// Whether the access log writes (`log.access`), changed while the gateway runs: a reload sets it. One relaxed
/// atomic Boolean, read once per request.
package final class AccessLogSwitch: Sendable {
    private let on: Atomic<Bool>

    package init(_ on: Bool) {
        self.on = Atomic(on)
    }

    package var isOn: Bool { on.load(ordering: .relaxed) }

    package func set(_ on: Bool) {
        self.on.store(on, ordering: .relaxed)
    }
}
