import NIOCore

/// Recognises a runner's sync-response body that the gateway would send on unchanged: JSON that
/// `JSONValueCodec.parse` accepts and that `RESTResponseBody.encode(result:)` writes back to the same bytes,
/// apart from insignificant whitespace (RFC 8259 §2), which is dropped (issue 11: decoding the runner's answer
/// into `Value` trees and encoding it again cost ~15 k instructions of a ~241 k REST call).
///
/// The scan builds no tree. It answers yes only for `{"outputs":[<objects>],"metadata":{}}` (members in that
/// order, no traces) in which every value is already in the writer's form (``CanonicalJSONScanner``), nesting
/// within `maxDepth`. Anything else, valid or not, gets "no", and the caller takes the decoding path, which
/// produces today's result or today's error: this check never decides what is an error.
enum CanonicalSyncResponse {
    /// Objects with more keys are left to the parser: the duplicate check is quadratic.
    static var maxCheckedKeys: Int { CanonicalJSONScanner.maxCheckedKeys }

    /// The documents the scan recognises.
    enum Shape {
        /// `{"outputs":[<objects>],"metadata":{}}`: a sync response, and an SSE stream's final event's data.
        case syncResponse
        /// `{"outputs":[<objects>]}`: the data of an SSE output event before the final one (`SSEEncoder`'s
        /// `.output`), under the same rules.
        case outputsEvent
    }

    /// The body to send for `body` (the same bytes, or a copy without its whitespace), or nil when `body` is
    /// not a canonical sync response.
    static func passthroughBody(_ body: ByteBuffer, maxDepth: Int) -> ByteBuffer? {
        guard let scan = scan(body, maxDepth: maxDepth), scan.shape == .syncResponse else { return nil }
        return scan.sawWhitespace ? compacted(body) : body
    }

    /// The body to send for `body` (as ``passthroughBody(_:maxDepth:)``) and which canonical document it is, in
    /// one scan; nil when it is neither.
    static func passthrough(_ body: ByteBuffer, maxDepth: Int) -> (body: ByteBuffer, shape: Shape)? {
        guard let scan = scan(body, maxDepth: maxDepth) else { return nil }
        return (scan.sawWhitespace ? compacted(body) : body, scan.shape)
    }

    /// Which canonical document `body` is, and whether it has whitespace to drop; nil when it is neither.
    private static func scan(_ body: ByteBuffer, maxDepth: Int) -> (shape: Shape, sawWhitespace: Bool)? {
        guard body.readableBytes > 0 else { return nil }
        return body.withUnsafeReadableBytes { raw in
            var scanner = CanonicalJSONScanner(raw, maxDepth: maxDepth)
            return scanner.syncResponseDocument().map { ($0, scanner.sawWhitespace) }
        }
    }

    /// `body` without whitespace outside strings; only called on text the scanner accepted.
    static func compacted(_ body: ByteBuffer) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: body.readableBytes)
        body.withUnsafeReadableBytes { CanonicalJSONScanner.writeCompacted($0, into: &out) }
        return out
    }
}

extension CanonicalJSONScanner {
    /// Which canonical document the text is, or nil when it is neither.
    mutating func syncResponseDocument() -> CanonicalSyncResponse.Shape? {
        skipWhitespace()
        guard enterContainer(), literal("{"), member("outputs"), enterContainer(), literal("[") else {
            return nil
        }
        skipWhitespace()
        if !literal("]") {
            let outputs = elements(closing: "]") { $0.next(is: UInt8(ascii: "{")) && $0.object() }
            guard outputs else { return nil }
        }
        leaveContainer()
        skipWhitespace()
        var shape = CanonicalSyncResponse.Shape.outputsEvent
        if literal(",") {
            guard member("metadata"), enterContainer(), literal("{") else { return nil }
            skipWhitespace()
            guard literal("}") else { return nil }
            leaveContainer()
            skipWhitespace()
            shape = .syncResponse
        }
        guard literal("}") else { return nil }
        skipWhitespace()
        return atEnd ? shape : nil
    }
}
