import HTTP2Engine
package import NIOCore
import ProtoCodec
import Synchronization
package import TriggerModel
import WireCodecs

/// The `grpc` transport: h2c (prior knowledge) to runners serving `trigger.runner.v1.Runner` (API.md §5),
/// over the HTTP/2 engine's client role.
///
/// Owns, per endpoint, a small set of multiplexed connections: calls share a connection until it has
/// ``GRPCBackendConnectionLoad/maxStreams`` streams, then another one is opened; a connection that received
/// GOAWAY or closed is dropped and replaced on the next call. Endpoints are picked by least outstanding
/// calls, ties broken round robin, like the http transport.
///
/// Metadata (runner.proto's header): `grpc-timeout` from the request's deadline, `request-id`,
/// `traceparent`/`tracestate`, `x-trigger-principal`, `idempotency-key`. Cancelling the calling task
/// resets that call's stream (RST_STREAM CANCEL) and nothing else.
package final class GRPCBackendTransport: TriggerRunner {
    static let runPath = "/trigger.runner.v1.Runner/Run"
    static let runStreamPath = "/trigger.runner.v1.Runner/RunStream"

    private let configuration: BackendPoolConfiguration
    private let group: any EventLoopGroup
    private let endpoints: [GRPCBackendEndpoint]
    private let roundRobin = Atomic<Int>(0)

    package init(configuration: BackendPoolConfiguration, group: any EventLoopGroup) {
        precondition(!configuration.endpoints.isEmpty, "config validation guarantees endpoints")
        self.configuration = configuration
        self.group = group
        self.endpoints = configuration.endpoints.map {
            GRPCBackendEndpoint($0, peer: GRPCBackendPeer(pool: configuration.name, endpoint: $0.description))
        }
    }

    /// Live connections across all endpoints (for tests and metrics).
    package var connectionCount: Int {
        endpoints.reduce(0) { $0 + $1.connectionCount }
    }

    /// Closes every connection; calls in flight fail with `.backendFailed`.
    package func close() {
        for endpoint in endpoints { endpoint.closeAll() }
    }
}

extension GRPCBackendTransport: RetirableTransport {
    /// Calls in flight finish; each connection closes after its last stream.
    package func retire() {
        for endpoint in endpoints { endpoint.retireAll() }
    }
}

extension GRPCBackendTransport {

    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        let endpoint = pickEndpoint()
        endpoint.outstanding.add(1, ordering: .relaxed)
        defer { endpoint.outstanding.subtract(1, ordering: .relaxed) }

        let headers = try requestHeaders(path: Self.runPath, endpoint: endpoint, request: request)
        let message = GRPCMessageFramer.frame(RunnerCodec.encodeRunRequest(request))
        // A refused stream never reached the backend (GOAWAY race, connection closing): one retry on a fresh
        // connection is safe even for non-idempotent runs.
        for attempt in 0..<2 {
            let connection = try await endpoint.acquire(group: group, connectTimeout: configuration.connectTimeout)
            let promise = connection.eventLoop.makePromise(of: TriggerResult.self)
            let call = NIOLoopBoundBox.makeBoxSendingValue(
                GRPCBackendCall(unary: promise, peer: endpoint.peer, maxMessageBytes: configuration.maxResponseBytes),
                eventLoop: connection.eventLoop
            )
            do {
                return try await withTaskCancellationHandler {
                    connection.start(call, headers: headers, message: message, deadline: request.deadline)
                    return try await promise.futureResult.get()
                } onCancel: {
                    let error = cancelledError(endpoint.peer)
                    call.eventLoop.execute { call.value.cancel(error) }
                }
            } catch is GRPCBackendCall.Refused where attempt == 0 {
                continue
            } catch is GRPCBackendCall.Refused {
                throw refusedError(endpoint.peer)
            }
        }
        throw refusedError(endpoint.peer)
    }

    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let endpoint = pickEndpoint()
        let consumer = GRPCBackendStreamConsumer(
            request: request,
            endpoint: endpoint,
            group: group,
            configuration: configuration,
            makeHeaders: { try self.requestHeaders(path: Self.runStreamPath, endpoint: endpoint, request: request) }
        )
        // Pull-based: one event is fetched (and its bytes consumed) per `next()`, so the consumer's pace is the
        // backend's pace. Dropping or cancelling the consumer resets the stream.
        return AsyncThrowingStream(unfolding: { try await consumer.next() })
    }

    // MARK: Request metadata

    func requestHeaders(path: String, endpoint: GRPCBackendEndpoint, request: TriggerRequest) throws -> HTTP2Headers {
        var headers: HTTP2Headers = [
            ":method": "POST",
            ":scheme": "http",
            ":path": path,
            ":authority": endpoint.peer.endpoint,
            "content-type": "application/grpc",
            "te": "trailers",
        ]
        if let deadline = request.deadline {
            let remaining = deadline - .now()
            guard remaining > .zero else {
                throw GatewayError(
                    .deadlineExceeded,
                    "backend pool \"\(configuration.name)\": the deadline passed before the call started"
                )
            }
            headers.add(name: "grpc-timeout", value: GRPCTimeout.encode(remaining))
        }
        Self.addMetadata(&headers, "request-id", request.requestID)
        Self.addMetadata(&headers, "traceparent", request.traceParent)
        Self.addMetadata(&headers, "tracestate", request.traceState)
        Self.addMetadata(&headers, "x-trigger-principal", request.principal)
        Self.addMetadata(&headers, "idempotency-key", request.idempotencyKey)
        return headers
    }

    /// Adds a client-supplied value only when it is a valid field value (RFC 9110 §5.5: visible ASCII,
    /// space and tab); anything else would make the backend's HTTP/2 stack reject the whole stream.
    private static func addMetadata(_ headers: inout HTTP2Headers, _ name: String, _ value: String?) {
        guard let value, !value.isEmpty,
            !value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F })
        else { return }
        headers.add(name: name, value: value)
    }

    private func pickEndpoint() -> GRPCBackendEndpoint {
        if endpoints.count == 1 { return endpoints[0] }
        let start = roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue
        var best = endpoints[start % endpoints.count]
        var bestLoad = best.outstanding.load(ordering: .relaxed)
        for offset in 1..<endpoints.count {
            let candidate = endpoints[(start + offset) % endpoints.count]
            let load = candidate.outstanding.load(ordering: .relaxed)
            if load < bestLoad {
                best = candidate
                bestLoad = load
            }
        }
        return best
    }
}

func cancelledError(_ peer: GRPCBackendPeer) -> GatewayError {
    GatewayError(.cancelled, "the call to backend pool \"\(peer.pool)\" (\(peer.endpoint)) was cancelled")
}

func refusedError(_ peer: GRPCBackendPeer) -> GatewayError {
    GatewayError(.backendFailed, "backend pool \"\(peer.pool)\": \(peer.endpoint) refused the stream")
}
