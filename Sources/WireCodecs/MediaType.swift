import TriggerModel

/// Parses `type/subtype; name=value; name="quoted value"` header values: `Content-Type` (for the multipart
/// boundary and a part's type) and `Content-Disposition` (whose "type" is `form-data`).
package enum MediaType {
    /// The lowercased type and the parameters, with lowercased names and unquoted values (RFC 9110 §5.6.6).
    /// A malformed parameter is skipped rather than failing the whole header; a repeated name keeps the first.
    package static func parse(_ header: String) -> (type: String, parameters: [String: String]) {
        // The usual value (`application/json`): already lowercase, nothing to trim, no parameters; answered
        // with one pass over its bytes (the general path below copies and lowercases, ~1 000 instructions).
        if isPlainLowercaseType(header) { return (header, [:]) }
        let bytes = Array(header.utf8)
        var i = 0
        let typeEnd = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
        let type = trimmed(bytes[0..<typeEnd]).lowercased()
        i = typeEnd
        var parameters: [String: String] = [:]
        while i < bytes.count {
            // At a ';' (or garbage after a bad parameter): skip to the next name.
            i += 1
            while i < bytes.count && isBlank(bytes[i]) { i += 1 }
            let nameStart = i
            while i < bytes.count && bytes[i] != UInt8(ascii: "=") && bytes[i] != UInt8(ascii: ";") { i += 1 }
            let name = trimmed(bytes[nameStart..<i]).lowercased()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else { continue }
            i += 1
            while i < bytes.count && isBlank(bytes[i]) { i += 1 }
            var value: [UInt8] = []
            if i < bytes.count && bytes[i] == UInt8(ascii: "\"") {
                i += 1
                while i < bytes.count && bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\") && i + 1 < bytes.count { i += 1 }
                    value.append(bytes[i])
                    i += 1
                }
                i += 1
                while i < bytes.count && bytes[i] != UInt8(ascii: ";") { i += 1 }
            } else {
                let valueStart = i
                while i < bytes.count && bytes[i] != UInt8(ascii: ";") { i += 1 }
                value = Array(trimmed(bytes[valueStart..<i]).utf8)
            }
            if !name.isEmpty && parameters[name] == nil {
                parameters[name] = String(decoding: value, as: UTF8.self)
            }
        }
        return (type, parameters)
    }

    /// Decodes an RFC 8187 extended value (`UTF-8''na%C3%AFve.txt`), as sent in `filename*`; nil if malformed.
    static func decodeExtendedValue(_ value: String) -> String? {
        let parts = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].lowercased() == "utf-8" else { return nil }
        guard let out = PercentDecoding.decodeBytes(parts[2].utf8, strict: true) else { return nil }
        return String(validating: out, as: UTF8.self)
    }

    private static func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }

    /// True for a non-empty value made only of lowercase letters, digits and `/ + - .` (no blank, no `;`, no
    /// uppercase): the general parse would return it unchanged with no parameters.
    static func isPlainLowercaseType(_ header: String) -> Bool {
        var header = header
        return header.withUTF8 { bytes in
            guard !bytes.isEmpty else { return false }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "/"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."):
                    continue
                default:
                    return false
                }
            }
            return true
        }
    }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> String {
        var slice = bytes
        while let first = slice.first, isBlank(first) { slice = slice.dropFirst() }
        while let last = slice.last, isBlank(last) { slice = slice.dropLast() }
        return String(decoding: slice, as: UTF8.self)
    }
}
