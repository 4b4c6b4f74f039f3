/// The caps the frontends enforce while bytes arrive (`limits:` in the config file).
package struct LimitsConfiguration: Sendable, Equatable {
    /// Largest request body or gRPC message, in bytes (REST and gRPC share the cap).
    package var maxBodyBytes: Int
    /// Most elements in a trigger's batch (`data[]` / `inputs[]`).
    package var maxBatch: Int
    /// Largest header block (HTTP/1.1 head, HTTP/2 header list), in bytes.
    package var maxHeaderBytes: Int
    /// Deepest nesting of lists/objects in a decoded payload.
    package var maxDepth: Int
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` announced to clients.
    package var maxConcurrentStreams: Int

    package init(
        maxBodyBytes: Int = 32 << 20,
        maxBatch: Int = 32,
        maxHeaderBytes: Int = 16_384,
        maxDepth: Int = 64,
        maxConcurrentStreams: Int = 100
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxBatch = maxBatch
        self.maxHeaderBytes = maxHeaderBytes
        self.maxDepth = maxDepth
        self.maxConcurrentStreams = maxConcurrentStreams
    }

    /// 32 MiB bodies, batches of 32, 16 KiB of headers, depth 64, 100 streams per connection.
    package static var defaults: LimitsConfiguration { LimitsConfiguration() }

    /// Accepted ranges, checked on load. The upper bounds guard against unit slips (a body cap of 32 GiB
    /// cannot be held in a `ByteBuffer`, whose indices are 32-bit).
    package static let maxBodyBytesRange = 1024...((1 << 32) - 1)
    package static let maxBatchRange = 1...4096
    package static let maxHeaderBytesRange = 1024...(1 << 20)
    package static let maxDepthRange = 1...1024
    package static let maxConcurrentStreamsRange = 1...((1 << 31) - 1)
}
