package import GatewayConfig
package import TriggerModel

/// Turns an `Authorization` header (or a `?token=` query value) into a principal.
///
/// Accepted forms: `Bearer <t>` (scheme case-insensitive, as RFC 7235 §2.1 says), Craft AI's
/// `EndpointToken <t>`, and a bare `<t>` (Instill clients send that). The token is compared with every
/// configured token, each over the longest length, with no early exit, so the time taken does not reveal
/// which token or how many leading bytes matched.
package struct TokenAuthenticator: Sendable {
    /// The fields, behind one reference. A frontend calls ``authenticate(authorization:)`` on a copy (its
    /// services are a connection's `var`, which the call cannot borrow), and a copy of the token list and the
    /// optional principal went through the runtime's generic value witnesses: ~270 instructions per gRPC call
    /// (bench/README.md, "Branch hotpath7"); now one retain and one release.
    private final class Storage: Sendable {
        let tokens: [(name: String, token: [UInt8])]
        let maxLength: Int
        let authRequired: Bool
        let certificatePrincipal: String?

        init(
            tokens: [(name: String, token: [UInt8])], maxLength: Int, authRequired: Bool, certificatePrincipal: String?
        ) {
            self.tokens = tokens
            self.maxLength = maxLength
            self.authRequired = authRequired
            self.certificatePrincipal = certificatePrincipal
        }
    }

    private var storage: Storage

    private var tokens: [(name: String, token: [UInt8])] { storage.tokens }
    private var maxLength: Int { storage.maxLength }
    /// False means every request passes and `authenticate` returns ``certificatePrincipal``.
    package var authRequired: Bool { storage.authRequired }
    /// The principal a connection's verified TLS client certificate names (its subject, or the listener's
    /// `client_principals` mapping; issue 17). Used when no token is required: with `auth: tokens` the token
    /// is still required and its name is the principal, so a certificate never stands in for a token.
    package var certificatePrincipal: String? {
        get { storage.certificatePrincipal }
        set {
            storage = Storage(
                tokens: storage.tokens, maxLength: storage.maxLength, authRequired: storage.authRequired,
                certificatePrincipal: newValue)
        }
    }

    package init(tokens: [(name: String, token: String)], authRequired: Bool) {
        let tokens = tokens.map { (name: $0.name, token: Array($0.token.utf8)) }
        storage = Storage(
            tokens: tokens, maxLength: tokens.map(\.token.count).max() ?? 0, authRequired: authRequired,
            certificatePrincipal: nil)
    }

    /// Auth is required when the config's `auth` is `tokens` and it lists at least one token.
    package init(configuration: GatewayConfiguration) {
        self.init(
            tokens: configuration.tokens.map { (name: $0.name, token: $0.token) },
            authRequired: configuration.authRequired
        )
    }

    /// The principal named by the header's token; when auth is off, the client certificate's
    /// (``certificatePrincipal``, nil without one). Throws `GatewayError(.unauthenticated)` when auth is on and
    /// the token is missing or unknown.
    package func authenticate(authorization: String?) throws(GatewayError) -> String? {
        guard authRequired else { return certificatePrincipal }
        return try authenticate(token: authorization.map(Self.credential(in:)))
    }

    /// The same check for a token that came without a scheme (Craft AI's `?token=` query parameter).
    package func authenticate(token: String?) throws(GatewayError) -> String? {
        guard authRequired else { return certificatePrincipal }
        guard let token, !token.isEmpty else { throw GatewayError(.unauthenticated, "missing bearer token") }
        guard let principal = match(Array(token.utf8)) else { throw GatewayError(.unauthenticated, "invalid token") }
        return principal
    }

    /// Strips a `Bearer` / `EndpointToken` scheme and surrounding spaces; anything else is a bare token (Instill
    /// clients send one; security review 60, I2).
    static func credential(in header: String) -> String {
        for scheme in ["bearer", "endpointtoken"] {
            if let credential = credential(in: header, scheme: scheme) { return credential }
        }
        return String(trimmed(Substring(header)))
    }

    /// The credential of an `Authorization` value of `scheme` (lowercase; schemes are case-insensitive, RFC 9110
    /// §11.1): what follows the scheme and its spaces, spaces and tabs around the value dropped; "" for the scheme
    /// alone; nil for another scheme or none. The one scheme parser: the gateway's tokens (`credential(in:)`) and
    /// Craft AI's access tokens (`Bearer` only) read the header alike (diff review 60, L-5: two parsers trimmed
    /// differently).
    package static func credential(in header: String, scheme: String) -> String? {
        let value = trimmed(Substring(header))
        guard value.prefix(scheme.count).lowercased() == scheme else { return nil }
        let rest = value.dropFirst(scheme.count)
        if rest.isEmpty { return "" }
        guard let first = rest.first, first == " " || first == "\t" else { return nil }
        return String(trimmed(rest))
    }

    private static func trimmed(_ s: Substring) -> Substring {
        var s = s.drop { $0 == " " || $0 == "\t" }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }

    private func match(_ presented: [UInt8]) -> String? {
        let length = max(maxLength, presented.count)
        var found = -1
        presented.withUnsafeBufferPointer { p in
            for (index, candidate) in tokens.enumerated() {
                // Different lengths must never compare equal, whatever the bytes say.
                var difference = UInt(bitPattern: candidate.token.count ^ p.count)
                candidate.token.withUnsafeBufferPointer { c in
                    for i in 0..<length {
                        let a = i < p.count ? p[i] : 0
                        let b = i < c.count ? c[i] : 0
                        difference |= UInt(a ^ b)
                    }
                }
                // Tokens are unique (config validation), so at most one index can be found.
                let isMatch = difference == 0
                found = isMatch ? index : found
            }
        }
        return found >= 0 ? tokens[found].name : nil
    }
}
