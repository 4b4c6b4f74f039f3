import TriggerModel

/// The caps the frontends enforce while bytes arrive (`limits:` in the config file).
package struct LimitsConfiguration: Sendable, Equatable {
    /// Largest request body or gRPC message, in bytes (REST and gRPC share the cap).
    package var maxBodyBytes: Int
    /// Largest a compressed gRPC message (`grpc-encoding: gzip|deflate`) may inflate to, in bytes: gRPC core's
    /// default receive limit, 4 MiB, checked after decompression as gRPC core checks it. Never above
    /// ``maxBodyBytes`` (a configured value over it is refused on load; the default is lowered to it). Separate
    /// from ``maxBodyBytes`` because a compressed message costs its sender ~1/1000 of what it costs the gateway
    /// (review 24, H2): uncompressed messages pay for their bytes on the wire and keep ``maxBodyBytes``.
    package var maxDecompressedBytes: Int
    /// The request-body bytes all requests together may hold buffered at once, in bytes (HTTP/1.1 and HTTP/2
    /// bodies as they are gathered, gRPC messages, decompressed ones at their inflated size); 0: no budget (the
    /// bytes are still counted for `trigger_gateway_request_buffer_bytes`). A new body past it is refused with
    /// 503 / RESOURCE_EXHAUSTED (review 24, M1; Envoy's overload manager refuses new streams the same way).
    package var maxBufferedRequestBytes: Int
    /// The request-body bytes one HTTP/2 connection's streams may hold buffered together, in bytes; 0: no bound.
    /// Past it the connection's streams get no more flow-control window (no WINDOW_UPDATE) until bytes are handed
    /// on, refused or reset: the client is held back by the protocol, not answered 503, so one connection (up to
    /// ``maxConcurrentStreams`` × ``maxBodyBytes``) cannot take ``maxBufferedRequestBytes`` from every other
    /// client (review 24, M1 item 3; Envoy's `per_connection_buffer_limit_bytes`). The connection's oldest body
    /// being received always gets window, so a connection at the bound still progresses.
    package var maxBufferedRequestBytesPerConnection: Int
    /// Most elements in a trigger's batch (`data[]` / `inputs[]`).
    package var maxBatch: Int
    /// Largest header block (HTTP/1.1 head, HTTP/2 header list), in bytes.
    package var maxHeaderBytes: Int
    /// Deepest nesting of lists/objects in a decoded payload.
    package var maxDepth: Int
    /// Most JSON object members plus array elements in one request body, nested ones included (over gRPC:
    /// `Struct` fields plus `ListValue` values in one message).
    package var maxJSONMembers: Int
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` announced to clients.
    package var maxConcurrentStreams: Int
    /// Open client connections at most; one accepted over the cap is closed at once (and counted). Keep it
    /// under the process's file-descriptor limit (`ulimit -n`), with room for backend connections.
    package var maxConnections: Int
    /// Open client connections of one peer at most (an IPv4 address; an IPv6 /64 counts as one): one accepted
    /// over it is closed at once (and counted). 0, the default: no per-peer cap.
    ///
    /// Off by default, as nginx's `limit_conn`, HAProxy's `src_conn_cur` rules and Envoy (which has no per-client
    /// connection cap) are: the gateway usually runs behind a load balancer or ingress that connects from a few
    /// addresses (ingress-nginx keeps 320 upstream connections per worker alone), and a default cap would refuse
    /// that proxy's connections under load. A client can no longer hold an idle HTTP/2 connection with PINGs
    /// (`timeouts.idle` counts streams, review 24 M3), so what a cap adds is for a port clients reach directly.
    package var maxConnectionsPerPeer: Int
    /// Response bytes buffered for one HTTP/2 stream (waiting for the client's window) before the backend
    /// is paused; it resumes at half.
    package var streamBufferBytes: Int
    /// Response bytes buffered for all streams of one HTTP/2 connection before every stream's backend is
    /// paused; they resume at half.
    package var connectionBufferBytes: Int

    package init(
        maxBodyBytes: Int = 32 << 20,
        maxDecompressedBytes: Int = 4 << 20,
        maxBufferedRequestBytes: Int = 1 << 30,
        maxBufferedRequestBytesPerConnection: Int = 64 << 20,
        maxBatch: Int = 32,
        maxHeaderBytes: Int = 16_384,
        maxDepth: Int = 64,
        maxJSONMembers: Int = 100_000,
        maxConcurrentStreams: Int = 100,
        maxConnections: Int = 4096,
        maxConnectionsPerPeer: Int = 0,
        streamBufferBytes: Int = 256 << 10,
        connectionBufferBytes: Int = 1 << 20
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxDecompressedBytes = maxDecompressedBytes
        self.maxBufferedRequestBytes = maxBufferedRequestBytes
        self.maxBufferedRequestBytesPerConnection = maxBufferedRequestBytesPerConnection
        self.maxBatch = maxBatch
        self.maxHeaderBytes = maxHeaderBytes
        self.maxDepth = maxDepth
        self.maxJSONMembers = maxJSONMembers
        self.maxConcurrentStreams = maxConcurrentStreams
        self.maxConnections = maxConnections
        self.maxConnectionsPerPeer = maxConnectionsPerPeer
        self.streamBufferBytes = streamBufferBytes
        self.connectionBufferBytes = connectionBufferBytes
    }

    /// 32 MiB bodies (4 MiB decompressed gRPC messages, 1 GiB buffered by all requests together, 64 MiB by one
    /// HTTP/2 connection's: one whole body and room for small calls beside it), batches of 32,
    /// 16 KiB of headers, depth 64, 100,000 JSON members, 100 streams per connection, 4096 connections (no per-peer
    /// cap), 256 KiB buffered per stream and 1 MiB per connection.
    package static var defaults: LimitsConfiguration { LimitsConfiguration() }

    /// Accepted ranges, checked on load. The upper bounds guard against unit slips (a body cap of 32 GiB
    /// cannot be held in a `ByteBuffer`, whose indices are 32-bit).
    package static let maxBodyBytesRange = 1024...((1 << 32) - 1)
    package static let maxDecompressedBytesRange = 1024...((1 << 32) - 1)
    /// 0 (no budget), or at least 1 KiB.
    package static let maxBufferedRequestBytesRange = 0...(1 << 50)
    /// 0 (no bound), or at least 1 KiB.
    package static let maxBufferedRequestBytesPerConnectionRange = 0...(1 << 50)
    package static let maxBatchRange = 1...4096
    package static let maxHeaderBytesRange = 1024...(1 << 20)
    package static let maxDepthRange = 1...Value.maximumDepth
    /// Up to 2^24: a 32 MiB body holds at most ~16.8 million (`[0,0,…]`, two bytes each).
    package static let maxJSONMembersRange = 1...(1 << 24)
    package static let maxConcurrentStreamsRange = 1...((1 << 31) - 1)
    package static let maxConnectionsRange = 1...1_000_000
    /// 0 turns the per-peer cap off.
    package static let maxConnectionsPerPeerRange = 0...1_000_000
    package static let streamBufferBytesRange = 1024...(1 << 30)
    package static let connectionBufferBytesRange = 1024...((1 << 32) - 1)
}
