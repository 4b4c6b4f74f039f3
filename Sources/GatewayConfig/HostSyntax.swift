#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Syntax checks for the host part of `host:port` strings (listen address, backend endpoints), and the
/// loopback test behind the listen policy. Literal addresses are checked with `inet_pton`, the same
/// parser the socket layer will use, so "valid here" means "bindable syntax there".
enum HostSyntax {
    enum Kind: Equatable {
        case ipv4([UInt8])
        case ipv6([UInt8])
        case name
    }

    /// Classifies a host (IPv6 without its brackets), or nil when it is neither an address nor a DNS name.
    static func classify(_ host: String) -> Kind? {
        if host.contains(":") {
            guard let bytes = pton(AF_INET6, host, count: 16) else { return nil }
            return .ipv6(bytes)
        }
        if host.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || ($0 >= 48 && $0 <= 57) }) {
            guard let bytes = pton(AF_INET, host, count: 4) else { return nil }
            return .ipv4(bytes)
        }
        return isDNSName(host) ? .name : nil
    }

    /// 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and `localhost`: the addresses no other machine can reach.
    static func isLoopback(_ host: String) -> Bool {
        switch classify(host) {
        case .ipv4(let b): return b[0] == 127
        case .ipv6(let b):
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
            let mapped = b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF
            return mapped && b[12] == 127
        case .name: return host.lowercased() == "localhost" || host.lowercased() == "localhost."
        case nil: return false
        }
    }

    /// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens, 1–63 bytes each.
    private static func isDNSName(_ host: String) -> Bool {
        var name = Substring(host)
        if name.hasSuffix(".") { name = name.dropLast() }
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count),
                label.utf8.first != UInt8(ascii: "-"), label.utf8.last != UInt8(ascii: "-"),
                label.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
            else { return false }
        }
        return true
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }

    private static func pton(_ family: Int32, _ text: String, count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        // inet_pton returns 1 on success, 0 for text that is not an address of the family, -1 for a bad family.
        let rc = bytes.withUnsafeMutableBytes { inet_pton(family, text, $0.baseAddress) }
        return rc == 1 ? bytes : nil
    }

    /// Splits `host:port` / `[v6]:port`; the port must be 0–65535. Returns nil with a reason on failure.
    static func splitHostPort(_ text: String) -> Result<(host: String, port: Int), HostPortProblem> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(.unclosedBracket) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(.missingPort) }
            portText = rest.dropFirst()
            guard case .ipv6 = classify(String(host)) else { return .failure(.badHost(String(host))) }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(.missingPort) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(.unbracketedIPv6) }
            guard classify(String(host)) != nil else { return .failure(.badHost(String(host))) }
        }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let port = Int(portText), port <= 65535
        else { return .failure(.badPort(String(portText))) }
        return .success((String(host), port))
    }

    enum HostPortProblem: Error, CustomStringConvertible {
        case unclosedBracket, missingPort, unbracketedIPv6
        case badHost(String)
        case badPort(String)

        var description: String {
            switch self {
            case .unclosedBracket: "missing \"]\" after an IPv6 address"
            case .missingPort: "missing port (expected host:port, or [v6-address]:port)"
            case .unbracketedIPv6: "an IPv6 address must be written in brackets, as [::1]:8080"
            case .badHost(let h) where h.isEmpty: "missing host (expected host:port)"
            case .badHost(let h): "\"\(h)\" is not an IP address or host name"
            case .badPort(let p): "port \"\(p)\" is not a number from 0 to 65535"
            }
        }
    }
}
