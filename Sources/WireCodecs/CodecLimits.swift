/// The caps every wire codec enforces while it decodes, so a hostile body fails early with a clear error instead
/// of costing memory or time.
///
/// The frontends fill it from the gateway configuration; codecs take it by value and never consult globals.
package struct CodecLimits: Sendable, Equatable {
    /// The largest body a codec accepts (`maxBodyBytes` in the config; REST and gRPC share it).
    package var maxBodyBytes: Int
    /// The largest batch (`data[i]`, `variables[i]`) a trigger may carry.
    package var maxBatch: Int
    /// How deeply JSON arrays/objects (and protobuf `Struct`/`ListValue`s) may nest; the outermost container
    /// counts as depth 1.
    package var maxDepth: Int
    /// How many parts a multipart body may have.
    package var maxMultipartParts: Int
    /// How many bytes the header fields of one multipart part may take: each field line with its CRLF, not the
    /// blank line that ends the block (as the request head's `max_header_bytes`).
    package var maxMultipartPartHeaderBytes: Int

    package init(
        maxBodyBytes: Int = 33_554_432,
        maxBatch: Int = 32,
        maxDepth: Int = 64,
        maxMultipartParts: Int = 1024,
        maxMultipartPartHeaderBytes: Int = 16 * 1024
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxBatch = maxBatch
        self.maxDepth = maxDepth
        self.maxMultipartParts = maxMultipartParts
        self.maxMultipartPartHeaderBytes = maxMultipartPartHeaderBytes
    }

    /// 32 MiB bodies, batches of 32, nesting depth 64, 1024 multipart parts with 16 KiB of headers each.
    package static var defaults: CodecLimits { CodecLimits() }
}
