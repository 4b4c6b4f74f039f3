import TriggerModel

/// Parses `type/subtype; name=value; name="quoted value"` header values: `Content-Type` (for the multipart
/// boundary and a part's type) and `Content-Disposition` (whose "type" is `form-data`).
package enum MediaType {
    /// The lowercased type and the parameters, with lowercased names and unquoted values (RFC 9110 §5.6.6).
    /// A malformed parameter is skipped rather than failing the whole header; a repeated name keeps the first.
    /// In a quoted value `\"` and `\\` are quoted-pairs; a backslash before any other byte is kept with it, as
    /// Werkzeug does: form-data senders that follow the HTML standard (urllib3 2, curl 7.81+, browsers) send a
    /// file name's backslash raw (`back\slash.txt`), and RFC 9110's rule would drop it (review 23 L3).
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
                    if bytes[i] == UInt8(ascii: "\\") && i + 1 < bytes.count
                        && (bytes[i + 1] == UInt8(ascii: "\"") || bytes[i + 1] == UInt8(ascii: "\\"))
                    {
                        i += 1
                    }
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

    /// Undoes the HTML standard's escapes in a form-data `name` or `filename` ("multipart/form-data encoding
    /// algorithm": `"` as `%22`, CR as `%0D`, LF as `%0A`, nothing else), which urllib3 2 (the SDKs' `requests`),
    /// curl 7.81+ and browsers apply; any other `%` is the name's own (`percent%41.txt` stays). Review 23 L3: a
    /// `quote"d.bin` upload reached the runner as `quote%22d.bin`.
    package static func decodeFormDataEscapes(_ value: String) -> String {
        guard value.utf8.contains(UInt8(ascii: "%")) else { return value }
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        let bytes = Array(value.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count {
                let escaped: UInt8? =
                    switch (bytes[i + 1], bytes[i + 2] | 0x20) {
                    case (UInt8(ascii: "2"), UInt8(ascii: "2")): UInt8(ascii: "\"")
                    case (UInt8(ascii: "0"), UInt8(ascii: "d")): 0x0D
                    case (UInt8(ascii: "0"), UInt8(ascii: "a")): 0x0A
                    default: nil
                    }
                if let escaped {
                    out.append(escaped)
                    i += 3
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
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
        return header.withUTF8Bytes { bytes in
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
