/// The one percent-decoder of the gateway (RFC 3986 §2.1: `%` followed by two hex digits, either case, is
/// the byte they spell). Every reader of `%XX` escapes uses it: REST path segments and operation ids,
/// query parameters, data-URI headers, `grpc-message`, RFC 8187 `filename*` values and PostgreSQL URLs.
///
/// Callers differ only in two choices, so those are parameters rather than separate decoders:
/// - what a `%` not followed by two hex digits means: a literal `%` (gRPC's "must not fail on bad
///   input", data URIs) or a malformed input (`strict`, for request targets);
/// - whether `+` is a space, as `application/x-www-form-urlencoded` query strings write it
///   (WHATWG URL "application/x-www-form-urlencoded parsing"; RFC 3986 itself gives `+` no meaning).
///
/// `public`, not `package`, with its `@inlinable` members: Swift 6.3.1 serialises no `@inlinable` body of a
/// `package` type, so callers in other modules called the unspecialised generic code (bench/README.md,
/// "Branch asynccost4", which found it for `GroupCommit`).
public enum PercentDecoding {
    /// The decoded bytes; nil only when `strict` and a `%` is not followed by two hex digits.
    @inlinable
    public static func decodeBytes<Bytes: Collection<UInt8>>(
        _ text: Bytes,
        plusAsSpace: Bool = false,
        strict: Bool = false
    ) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var i = text.startIndex
        while i < text.endIndex {
            let byte = text[i]
            text.formIndex(after: &i)
            switch byte {
            case UInt8(ascii: "%"):
                if i < text.endIndex, let high = hexValue(text[i]) {
                    let next = text.index(after: i)
                    if next < text.endIndex, let low = hexValue(text[next]) {
                        out.append(high << 4 | low)
                        i = text.index(after: next)
                        continue
                    }
                }
                if strict { return nil }
                out.append(byte)
            case UInt8(ascii: "+") where plusAsSpace:
                out.append(UInt8(ascii: " "))
            default:
                out.append(byte)
            }
        }
        return out
    }

    /// Decodes leniently: a `%` without two hex digits stays itself. Bytes that are not UTF-8 become U+FFFD.
    @inlinable
    public static func decode<Bytes: Collection<UInt8>>(_ text: Bytes, plusAsSpace: Bool = false) -> String {
        if let plain = unescaped(text, plusAsSpace: plusAsSpace) { return plain }
        // Never nil when not strict.
        return String(decoding: decodeBytes(text, plusAsSpace: plusAsSpace) ?? [], as: UTF8.self)
    }

    /// Decodes strictly: nil when a `%` is not followed by two hex digits. Bytes that are not UTF-8 become
    /// U+FFFD (an id with such bytes matches nothing, which is the answer the caller gives anyway).
    @inlinable
    public static func decodeStrictly<Bytes: Collection<UInt8>>(_ text: Bytes, plusAsSpace: Bool = false) -> String? {
        if let plain = unescaped(text, plusAsSpace: plusAsSpace) { return plain }
        return decodeBytes(text, plusAsSpace: plusAsSpace, strict: true).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `text` as a string when it holds nothing to decode (no `%`, and no `+` when `plusAsSpace`), else nil: the
    /// common case (a path segment, a query value) costs one pass over the bytes and no copy beyond the string's.
    ///
    /// On contiguous bytes (a `String`'s or `Substring`'s `utf8`, an array) the scan is a plain loop: the
    /// generic `contains(where:)` it replaces was left unspecialized across modules and cost ~1 700
    /// instructions per REST path segment (issue 11, `bench/callgrind`).
    @inlinable
    public static func unescaped<Bytes: Collection<UInt8>>(_ text: Bytes, plusAsSpace: Bool) -> String? {
        @inline(__always)
        func isEscape(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "%") || (plusAsSpace && byte == UInt8(ascii: "+"))
        }
        let contiguous = text.withContiguousStorageIfAvailable { bytes -> String? in
            for byte in bytes where isEscape(byte) { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        if let contiguous { return contiguous }
        for byte in text where isEscape(byte) { return nil }
        return String(decoding: text, as: UTF8.self)
    }

    /// The value of one hex digit (`0-9`, `a-f`, `A-F`), or nil.
    @inlinable
    public static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
