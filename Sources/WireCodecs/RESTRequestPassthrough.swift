import NIOCore
import TriggerModel

/// Recognises a REST trigger body (`RESTTriggerBody`) whose batch an http runner's run request
/// (`BackendHTTPBody`, API.md §5) can carry as the client's own text: decoding it into `Value` trees and writing
/// them again would give the same bytes (issue 11: that decode and encode cost ~7 k instructions more than this
/// scan, of a ~82 k REST call with a two-variable batch; bench/README.md, "Forty-fifth session").
///
/// Accepted, and nothing else (the caller then decodes, with today's model or today's error):
/// - `{"data":[<element>,…]}`: each element `{"variable":<object>}` or `{"variable":<object>,"secret":{}}` (a
///   secret with entries is decoded into a dictionary, which the encoder writes sorted);
/// - the legacy `{"inputs":[<object>,…]}`, whose elements are the variables themselves;
/// - one top-level member (a body with both, or others, is decoded: the decoder picks `data` and ignores the rest);
/// - at most ``maxBodyBytes`` of text;
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

    /// Larger bodies are decoded (`JSONParser.inPlaceBlobBytes`, where the parser starts slicing blobs out of the
    /// body): they are where blobs are, and a body with a data URI would have cost a scan up to it and an output
    /// buffer of its size for nothing; a large body's decode is its bytes' cost, not the per-call work saved here.
    static var maxBodyBytes: Int { JSONParser.inPlaceBlobBytes }

    /// `body`'s batch in the runner's form, or nil when `body` is not a canonical trigger body (or would be refused,
    /// or is over ``maxBodyBytes``).
    static func batch(of body: ByteBuffer, limits: CodecLimits) -> Batch? {
        let count = body.readableBytes
        guard count > 0, count <= maxBodyBytes else { return nil }
        // What the document can need: the client's text (less its whitespace), `{"data":[` and `]}`, and per
        // element at most 26 bytes of wrapping (a legacy element, at least `{}` and a comma in the client's text,
        // gets `{"variable":` and `,"secret":{}}`, and a comma before it from the second on).
        let bound = count + 11 + 26 * min(limits.maxBatch, count / 3 + 1)
        var document = ByteBufferAllocator().buffer(capacity: bound)
        var data: Range<Int>?
        _ = body.withUnsafeReadableBytes { raw in
            document.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { target in
                var scanner = CanonicalJSONScanner(
                    raw, maxDepth: limits.maxDepth, maxMembers: limits.maxJSONMembers,
                    output: UnsafeMutableRawBufferPointer(rebasing: target[..<bound]))
                data = scanner.triggerBody(maxBatch: limits.maxBatch)
                return data == nil ? 0 : scanner.written
            }
        }
        guard let data else { return nil }
        return Batch(
            document: document,
            runnerData: document.getSlice(at: document.readerIndex + data.lowerBound, length: data.count)!)
    }
}

extension CanonicalJSONScanner {
    /// A canonical trigger body (see ``RESTRequestPassthrough``) of 1 to `maxBatch` elements, written to the output
    /// as `{"data":[<runner elements>]}`; the range of the elements in what was written, or nil.
    mutating func triggerBody(maxBatch: Int) -> Range<Int>? {
        skipWhitespace()
        guard enterContainer(), literal("{") else { return nil }
        skipWhitespace()
        let legacy: Bool
        if next(is: "\"data\"") {
            legacy = false
            guard member("data") else { return nil }
        } else {
            legacy = true
            guard member("inputs") else { return nil }
        }
        guard enterContainer(), literal("[") else { return nil }
        emit("{\"data\":[")
        let dataStart = written
        skipWhitespace()
        var elements = 0
        let read = self.elements(closing: "]") { scanner in
            elements += 1
            guard elements <= maxBatch else { return false }
            scanner.emit(elements == 1 ? "{\"variable\":" : ",{\"variable\":")
            guard legacy ? scanner.variablesObject() : scanner.dataElement() else { return false }
            scanner.emit(",\"secret\":{}}")
            return true
        }
        guard read else { return nil }
        let data = dataStart..<written
        emit("]}")
        leaveContainer()
        skipWhitespace()
        guard literal("}") else { return nil }
        skipWhitespace()
        return atEnd ? data : nil
    }

    /// `{"variable":<object>}` or `{"variable":<object>,"secret":{}}`; the object copied.
    private mutating func dataElement() -> Bool {
        guard next(is: UInt8(ascii: "{")), enterContainer(), literal("{"), member("variable"), variablesObject()
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

    /// A canonical object at `pos`, copied to the output without its whitespace.
    private mutating func variablesObject() -> Bool {
        guard next(is: UInt8(ascii: "{")) else { return false }
        startCopy()
        guard object() else { return false }
        endCopy()
        return true
    }
}
