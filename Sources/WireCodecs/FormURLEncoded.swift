package import NIOCore
package import TriggerModel

/// `application/x-www-form-urlencoded` bodies (WHATWG URL standard, "application/x-www-form-urlencoded
/// parsing"): `name=value` pairs separated by `&`, `+` meaning a space and `%XX` a byte, decoded with the
/// gateway's one percent-decoder.
///
/// Unlike the lenient browser algorithm, a `%` not followed by two hex digits is refused: a client that sends
/// one has a bug, and guessing would hand a pipeline different text than the client meant. A name or value that
/// decodes to invalid UTF-8 is refused for the same reason.
package enum FormURLEncoded {
    /// The pairs in body order (a name may repeat); an empty body has none, and an empty `&&` segment is
    /// skipped. A pair without `=` has the empty value.
    ///
    /// - Throws: `GatewayError(.invalidArgument)` for a malformed escape or bytes that are not UTF-8.
    package static func decode(_ body: ByteBuffer) throws(GatewayError) -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = []
        let bytes = body.readableBytesView
        for segment in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = segment.firstIndex(of: UInt8(ascii: "="))
            let name = try decodeComponent(segment[..<(equals ?? segment.endIndex)])
            let value =
                try equals.map { index throws(GatewayError) in try decodeComponent(segment[(index + 1)...]) } ?? ""
            pairs.append((name, value))
        }
        return pairs
    }

    private static func decodeComponent(_ bytes: some Collection<UInt8>) throws(GatewayError) -> String {
        guard let decoded = PercentDecoding.decodeBytes(bytes, plusAsSpace: true, strict: true) else {
            throw GatewayError(.invalidArgument, "malformed percent-escape in the form body")
        }
        guard let text = String(validating: decoded, as: UTF8.self) else {
            throw GatewayError(.invalidArgument, "the form body is not UTF-8 once percent-decoded")
        }
        return text
    }
}
