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
    /// How many values one request body may hold inside containers: JSON object members plus array elements
    /// (protobuf `Struct` fields plus `ListValue` values), counted over the whole body, nested ones included
    /// and a repeated key each time it appears. Enforced as the parser reads, so a wide body is refused before
    /// its tree is built (review 24 M2: 10^6 keys in 12 MB cost 3.2 s of CPU and +260 MB). Backend answers
    /// are not held to it (a runner is configured, not a client).
    package var maxJSONMembers: Int
    /// How many parts a multipart body may have.
    package var maxMultipartParts: Int
    /// How many bytes the header fields of one multipart part may take: each field line with its CRLF, not the
    /// blank line that ends the block (as the request head's `max_header_bytes`).
    package var maxMultipartPartHeaderBytes: Int
    /// Whether JSON may hold `NaN`, `Infinity` and `-Infinity` as numbers: false for a client's body (RFC 8259
    /// has no such number, and no client library writes one by default); true for a runner's answer
    /// (``forBackendAnswers``), because Python's `json.dumps` writes them by default (`allow_nan=True`) and a
    /// model's output can be NaN. Read so, one such value is the number a `grpc` runner's `number_value` carries:
    /// it reaches a gRPC client as it is and a JSON reader as `null`, where refusing it failed the call after the
    /// runner did its work and counted a failure against an endpoint that is healthy (SDK review 56, L6).
    package var nonFiniteNumbers = false

    package init(
        maxBodyBytes: Int = 33_554_432,
        maxBatch: Int = 32,
        maxDepth: Int = 64,
        maxJSONMembers: Int = 100_000,
        maxMultipartParts: Int = 1024,
        maxMultipartPartHeaderBytes: Int = 16 * 1024
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxBatch = maxBatch
        self.maxDepth = maxDepth
        self.maxJSONMembers = maxJSONMembers
        self.maxMultipartParts = maxMultipartParts
        self.maxMultipartPartHeaderBytes = maxMultipartPartHeaderBytes
    }

    /// These limits for a backend's answer (or a runner reading the gateway's request): without `maxJSONMembers`,
    /// which is a client's cap (a runner's wide output is configured work, and refusing it would fail the call
    /// after the runner did it), and with ``nonFiniteNumbers``.
    package var forBackendAnswers: CodecLimits {
        var limits = self
        limits.maxJSONMembers = .max
        limits.nonFiniteNumbers = true
        return limits
    }

    /// 32 MiB bodies, batches of 32, nesting depth 64, 100,000 members and elements, 1024 multipart parts with 16 KiB of headers each.
    package static var defaults: CodecLimits { CodecLimits() }
}
