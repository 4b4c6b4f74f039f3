import TriggerModel

/// The HTTP/1.1 message rules the request decoder leaves to the server, checked on each request head before
/// routing (RFC 9112): `Host`, and the absolute form of the target. (Framing, `Transfer-Encoding` included, is
/// the decoder's: `HTTP1RequestDecoder` refuses a coding other than a single final `chunked` before any head
/// reaches here, 400 or 501 as its `Failure.status` says.)
enum HTTP1RequestRules {
    enum Outcome: Equatable {
        /// Serve the request; the target in origin-form (`/path?query`). `authority`: an absolute-form target's
        /// (`host[:port]`), which replaces the Host header (RFC 9112 §3.2.2: the server "MUST ignore the received
        /// Host header field (if any) and instead use the host information of the request-target"); nil otherwise.
        case serve(target: String, authority: String?)
        /// Answer with `error`; `closeConnection` when the body's framing cannot be trusted.
        case reject(GatewayError, closeConnection: Bool)
    }

    /// - Parameters:
    ///   - minorVersion: the request's HTTP/1.x minor version.
    ///   - target: the request-target as sent.
    ///   - headers: the field lines, names in lowercase.
    ///
    /// The asterisk-form (`OPTIONS *`, RFC 9112 §3.2.4) and the authority-form (`CONNECT host:port`, §3.2.3) ask
    /// for what this gateway does not do (server-wide options, a proxy tunnel): 501 with words saying so
    /// (RFC 9110 §15.6.2: the server "does not support the functionality required"), instead of a 404 naming a
    /// path the client never sent.
    static func check(minorVersion: Int, target: String, headers: [(name: String, value: String)]) -> Outcome {
        if minorVersion >= 1 {
            // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
            // request message that lacks a Host header field and to any request message that contains more
            // than one Host header field line or a Host header field with an invalid field value."
            // By index: iterating the fields copied each (a retain and a release of both strings; issue 11).
            var hosts = 0
            var hostIndex = 0
            for index in headers.indices where headers[index].name == "host" {
                hosts += 1
                hostIndex = index
            }
            guard hosts == 1 else {
                let what = hosts == 0 ? "has no Host header" : "has \(hosts) Host headers"
                return .reject(
                    GatewayError(.invalidArgument, "HTTP/1.1 request \(what); send exactly one"), closeConnection: false
                )
            }
            let host = headers[hostIndex].value
            guard isValidHost(host) else {
                return .reject(
                    GatewayError(.invalidArgument, "invalid Host header \"\(host)\""), closeConnection: false)
            }
        }
        if target.utf8.first == UInt8(ascii: "/") { return .serve(target: target, authority: nil) }
        if target == "*" {
            return .reject(
                GatewayError(
                    .unimplemented,
                    "the asterisk-form request target (OPTIONS *, RFC 9112 §3.2.4) is not served; send a path"),
                closeConnection: false)
        }
        guard let authority = absoluteFormAuthority(target) else {
            return .reject(
                GatewayError(
                    .unimplemented,
                    "the authority-form request target \"\(target)\" (CONNECT, RFC 9112 §3.2.3) is not served: "
                        + "this gateway is not a proxy; send a path"),
                closeConnection: false)
        }
        guard isValidHost(String(authority)) else {
            return .reject(
                GatewayError(.invalidArgument, "invalid authority \"\(authority)\" in the request target"),
                closeConnection: false)
        }
        return .serve(target: originForm(target), authority: String(authority))
    }

    /// The authority (`host[:port]`, userinfo dropped) of an absolute-form target (`scheme://authority/path?query`,
    /// RFC 9112 §3.2.2, RFC 3986 §3.2); nil when `target` is not in absolute-form.
    static func absoluteFormAuthority(_ target: String) -> Substring? {
        guard let colon = target.firstIndex(of: ":"), target[colon...].hasPrefix("://") else { return nil }
        let scheme = target[..<colon]
        guard let head = scheme.first, head.isASCII, head.isLetter,
            scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else { return nil }
        let afterScheme = target[target.index(colon, offsetBy: 3)...]
        let end = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
        let authority = afterScheme[..<end]
        if let at = authority.lastIndex(of: "@") { return authority[authority.index(after: at)...] }
        return authority
    }

    /// The origin-form of a target: an absolute-form one (`http://host:port/path?query`, RFC 9112 §3.2.2,
    /// which a server "MUST accept") loses its scheme and authority; the authority is not used for routing
    /// (the gateway serves one origin). Any other target is returned as it is.
    static func originForm(_ target: String) -> String {
        // An origin-form target (`/…`, what clients send) is returned as it is: checked on its first byte, since
        // the `Character` search for `:` below cost ~17 000 instructions on a usual trigger path (issue 11).
        if target.utf8.first == UInt8(ascii: "/") { return target }
        guard let colon = target.firstIndex(of: ":"), target[colon...].hasPrefix("://") else { return target }
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1)
        let scheme = target[..<colon]
        guard let head = scheme.first, head.isASCII, head.isLetter,
            scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else { return target }
        let afterAuthority = target[target.index(colon, offsetBy: 3)...]
        guard let pathStart = afterAuthority.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) else {
            return "/"
        }
        let rest = afterAuthority[pathStart...]
        return rest.first == "/" ? String(rest) : "/" + rest
    }

    /// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2), checked for its characters only: unreserved,
    /// pct-encoded, sub-delims, `:` and the brackets of an IP literal (RFC 3986 §3.2.2). Empty is valid.
    ///
    /// The allowed bytes as two 64-bit masks (bytes 0–63, 64–127), read over the bytes in place: a shift and a test
    /// per byte. The `case` labels before them cost ~650 instructions per REST request for a `Host` of
    /// `127.0.0.1:PORT` (bench/callgrind, forty-first session), a literal's `contains` ~750 before those.
    /// `RESTTargetFastPathTests.hostCharacters` checks every byte against it.
    static func isValidHost(_ value: String) -> Bool {
        if let valid = value.utf8.withContiguousStorageIfAvailable({ bytes in
            for c in bytes where !hostByte(c) { return false }
            return true
        }) {
            return valid
        }
        return value.utf8.allSatisfy(hostByte)
    }

    /// unreserved, pct-encoded's `%`, sub-delims, `:` and `[` `]` (RFC 3986 §2.1–2.3, §3.2.2).
    @inline(__always)
    private static func hostByte(_ c: UInt8) -> Bool {
        if c < 64 { return (hostBytesLow >> UInt64(c)) & 1 == 1 }
        if c < 128 { return (hostBytesHigh >> UInt64(c - 64)) & 1 == 1 }
        return false
    }

    /// Bits for `! $ % & ' ( ) * + , - .` (33, 36–46), digits (48–57), `:` (58), `;` (59), `=` (61).
    private static let hostBytesLow: UInt64 = 0x2FFF7FF200000000
    /// Bits for letters (65–90, 97–122), `[` `]` `_` `~`.
    private static let hostBytesHigh: UInt64 = 0x47FFFFFEAFFFFFFE
}
