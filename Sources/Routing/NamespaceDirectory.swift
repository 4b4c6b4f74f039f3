package import GatewayConfig
package import TriggerModel

/// The namespaces the gateway knows, for Instill's requester lookups (`core.mgmt.v1beta.MgmtPublicService`
/// `CheckNamespace`, `GetUser`, `GetOrganization`) and the `instill-requester-uid` check. Built once per
/// config from three sources, first match wins:
///
/// 1. `namespaces: [{id, kind}]`: declared users and organizations;
/// 2. a token's principal name: a user (the principal acts as itself);
/// 3. a namespace that routes name exactly: an organization; with a `*`-namespace route, any id is one.
///
/// Every namespace's uid is `ResourceUID.namespace(id)`, so it is stable and maps back without storage.
package struct NamespaceDirectory: Sendable {
    /// One known namespace.
    package struct Namespace: Sendable, Equatable {
        package var id: String
        package var kind: NamespaceConfiguration.Kind
        /// `ResourceUID.namespace(id)`.
        package var uid: String
        /// Instill's resource name of the user or organization: `users/{id}` or `organizations/{id}`.
        package var name: String { kind == .user ? "users/\(id)" : "organizations/\(id)" }
    }

    private let kinds: [String: NamespaceConfiguration.Kind]
    private let idsByUID: [String: String]
    /// True when a route names namespace `*`: every id is then a routed namespace.
    private let anyNamespaceRouted: Bool
    /// What each principal may act for besides itself (`tokens[].requesters`; `*` is any).
    private let requesters: [String: Set<String>]
    private let authRequired: Bool

    package init(
        namespaces: [NamespaceConfiguration] = [],
        tokens: [TokenConfiguration] = [],
        routes: [RouteConfiguration] = [],
        authRequired: Bool = false
    ) {
        var kinds: [String: NamespaceConfiguration.Kind] = [:]
        for namespace in namespaces where kinds[namespace.id] == nil { kinds[namespace.id] = namespace.kind }
        for token in tokens where kinds[token.name] == nil { kinds[token.name] = .user }
        for route in routes where route.namespace != RouteConfiguration.wildcard && kinds[route.namespace] == nil {
            kinds[route.namespace] = .organization
        }
        var requesters: [String: Set<String>] = [:]
        for token in tokens { requesters[token.name, default: []].formUnion(token.requesters) }
        // Ids a token names under `requesters` map back from their uid too (they may be routed only by `*`).
        let named = Set(kinds.keys).union(requesters.values.joined()).subtracting([RouteConfiguration.wildcard])
        self.kinds = kinds
        self.idsByUID = Dictionary(uniqueKeysWithValues: named.map { (ResourceUID.namespace($0), $0) })
        self.anyNamespaceRouted = routes.contains { $0.namespace == RouteConfiguration.wildcard }
        self.requesters = requesters
        self.authRequired = authRequired
    }

    package init(configuration: GatewayConfiguration) {
        self.init(
            namespaces: configuration.namespaces,
            tokens: configuration.tokens,
            routes: configuration.routes,
            authRequired: configuration.authRequired
        )
    }

    /// The namespace `id`, or nil when the gateway knows none by that id (Instill's `NAMESPACE_AVAILABLE`).
    package func namespace(id: String) -> Namespace? {
        guard !id.isEmpty, !id.contains("/") else { return nil }
        if let kind = kinds[id] { return Namespace(id: id, kind: kind, uid: ResourceUID.namespace(id)) }
        return anyNamespaceRouted ? Namespace(id: id, kind: .organization, uid: ResourceUID.namespace(id)) : nil
    }

    /// The namespace whose uid is `uid` among those named somewhere in the config (namespaces, principals, exact
    /// routes, token requesters); a namespace reached only through a `*` route and named nowhere cannot be
    /// found by uid (its id is not known in advance).
    package func namespace(uid: String) -> Namespace? {
        idsByUID[uid.lowercased()].flatMap { namespace(id: $0) }
    }

    /// Checks the `instill-requester-uid` a client sent for `principal` and returns the uid to pass on.
    ///
    /// - With tokens configured: the uid must be a known namespace's (else `.permissionDenied`, "unknown
    ///   requester"), and the principal must be that namespace or list it (or `*`) in its token's
    ///   `requesters` (else `.permissionDenied`).
    /// - With auth off: any syntactically valid UUID passes (there is no principal to check it against);
    ///   anything else is `.invalidArgument`. So it does for a client certificate's principal without tokens
    ///   (security review, L1): `requesters` is a token's setting, so a certificate principal has none to check
    ///   against, and refusing every uid but its own would break organizations' callers. README says a runner
    ///   that authorizes by the uid needs `auth: tokens`.
    package func checkRequester(uid: String, principal: String?) throws(GatewayError) -> String {
        let uid = uid.lowercased()
        guard Self.isUUID(uid) else {
            throw GatewayError(.invalidArgument, "instill-requester-uid \"\(uid)\" is not a UUID")
        }
        guard authRequired else { return uid }
        guard let namespace = namespace(uid: uid) else {
            throw GatewayError(.permissionDenied, "unknown requester: no namespace has uid \(uid)")
        }
        guard let principal, mayAct(principal, for: namespace.id) else {
            throw GatewayError(
                .permissionDenied, "\(principal ?? "this principal") may not act for namespace \"\(namespace.id)\"")
        }
        return uid
    }

    /// True when `principal` is namespace `id`, or its tokens list `id` or `*` under `requesters`.
    package func mayAct(_ principal: String, for id: String) -> Bool {
        if principal == id { return true }
        let allowed = requesters[principal] ?? []
        return allowed.contains(RouteConfiguration.wildcard) || allowed.contains(id)
    }

    /// 8-4-4-4-12 hex digits (RFC 9562 §4), lower case after the caller folded it.
    static func isUUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (i, byte) in bytes.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard
                    (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                        || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
                else { return false }
            }
        }
        return true
    }
}
