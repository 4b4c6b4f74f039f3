import NIOCore
import TriggerModel

/// Recognises a REST trigger body (`RESTTriggerBody`) whose batch an http runner's run request
/// (`BackendHTTPBody`, API.md §5) can carry as the client's own text: decoding it into `Value` trees and writing
/// them again would give the same bytes (issue 11: that decode and encode cost ~12 k instructions of a ~82 k REST
/// call for a one-variable batch).
///
/// Accepted, and nothing else (the caller then decodes, with today's model or today's error):
/// - `{"data":[<element>,…]}`: each element `{"variable":<object>}` or `{"variable":<object>,"secret":{}}` (a
///   secret with entries is decoded into a dictionary, which the encoder writes sorted);
/// - the legacy `{"inputs":[<object>,…]}`, whose elements are the variables themselves;
/// - one top-level member (a body with both, or others, is decoded: the decoder picks `data` and ignores the rest);
/// - 1 to `limits.maxBatch` elements, every variables object canonical (``CanonicalJSONScanner``: no data URIs,
///   no repeated keys), nesting within `limits.maxDepth` and members within `limits.maxJSONMembers`, counted as
///   the parser counts them.
/// Whitespace around the values is dropped (the runner's body never has any).
enum RESTRequestPassthrough {
    /// A canonical body's batch as the runner's run request carries it.
    struct Batch {
        /// `{"data":[<runner elements>]}`: decoded by `RESTTriggerBody` to the same inputs as the client's body.
        var document: ByteBuffer
        /// The slice of `document` between its brackets: `{"variable":{…},"secret":{}}` elements, comma-separated.
        var runnerData: ByteBuffer
    }

    /// `{"data":[` and `]}`: what ``Batch/document`` wraps its elements in.
    private static let documentHead: StaticString = "{\"data\":["
    private static let documentTail: StaticString = "]}"

    /// `body`'s batch in the runner's form, or nil when `body` is not a canonical trigger body (or would be refused).
    static func batch(of body: ByteBuffer, limits: CodecLimits) -> Batch? {
        let count = body.readableBytes
        guard count > 0 else { return nil }
        // Room for the runner's element wrapping (27 bytes each for a legacy element, 14 more for `data`'s own).
        var out = ByteBufferAllocator().buffer(capacity: count + 64)
        out.writeStaticString(documentHead)
        let accepted = body.withUnsafeReadableBytes { raw in
            var scanner = CanonicalJSONScanner(raw, maxDepth: limits.maxDepth, maxMembers: limits.maxJSONMembers)
            var elements = 0
            return scanner.triggerBody(maxBatch: limits.maxBatch) { variables, hasWhitespace in
                out.writeStaticString(elements == 0 ? "{\"variable\":" : ",{\"variable\":")
                let text = UnsafeRawBufferPointer(rebasing: raw[variables])
                if hasWhitespace {
                    CanonicalJSONScanner.writeCompacted(text, into: &out)
                } else {
                    out.writeBytes(text)
                }
                out.writeStaticString(",\"secret\":{}}")
                elements += 1
            }
        }
        guard accepted else { return nil }
        let dataStart = documentHead.utf8CodeUnitCount
        let dataCount = out.readableBytes - dataStart
        out.writeStaticString(documentTail)
        return Batch(document: out, runnerData: out.getSlice(at: out.readerIndex + dataStart, length: dataCount)!)
    }
}

extension CanonicalJSONScanner {
    /// A canonical trigger body (see ``RESTRequestPassthrough``) of 1 to `maxBatch` elements; `variables` is
    /// called with each element's variables object (its range in the text, and whether it holds whitespace to
    /// drop) as it is read.
    mutating func triggerBody(maxBatch: Int, _ variables: (Range<Int>, Bool) -> Void) -> Bool {
        skipWhitespace()
        guard enterContainer(), literal("{") else { return false }
        skipWhitespace()
        let legacy: Bool
        if next(is: "\"data\"") {
            legacy = false
            guard member("data") else { return false }
        } else {
            legacy = true
            guard member("inputs") else { return false }
        }
        guard enterContainer(), literal("[") else { return false }
        skipWhitespace()
        var count = 0
        let read = elements(closing: "]") { scanner in
            count += 1
            guard count <= maxBatch else { return false }
            return legacy ? scanner.variablesObject(variables) : scanner.dataElement(variables)
        }
        guard read else { return false }
        leaveContainer()
        skipWhitespace()
        guard literal("}") else { return false }
        skipWhitespace()
        return atEnd
    }

    /// `{"variable":<object>}` or `{"variable":<object>,"secret":{}}`.
    private mutating func dataElement(_ variables: (Range<Int>, Bool) -> Void) -> Bool {
        guard next(is: UInt8(ascii: "{")), enterContainer(), literal("{"), member("variable"),
            variablesObject(variables)
        else { return false }
        skipWhitespace()
        if literal(",") {
            guard member("secret"), next(is: UInt8(ascii: "{")), enterContainer(), literal("{") else { return false }
            skipWhitespace()
            guard literal("}") else { return false }
            leaveContainer()
            skipWhitespace()
        }
        guard literal("}") else { return false }
        leaveContainer()
        return true
    }

    /// A canonical object at `pos`, handed to `variables`.
    private mutating func variablesObject(_ variables: (Range<Int>, Bool) -> Void) -> Bool {
        guard next(is: UInt8(ascii: "{")) else { return false }
        let start = pos
        sawWhitespace = false
        guard object() else { return false }
        variables(start..<pos, sawWhitespace)
        return true
    }
}
