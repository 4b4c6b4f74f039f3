/// One namespace declared under `namespaces:`: whether Instill clients see it as a user or an organization.
///
/// Instill's management API (`core.mgmt.v1beta.MgmtPublicService`) tells the two apart: `CheckNamespace`
/// answers `NAMESPACE_USER` or `NAMESPACE_ORGANIZATION`, and the SDK then calls `GetUser` or `GetOrganization`
/// (CLIENTS.md §2.2). A namespace that routes name but this list does not is an organization; a token's
/// principal is a user.
package struct NamespaceConfiguration: Sendable, Equatable {
    package enum Kind: String, Sendable, Equatable, CaseIterable {
        case user
        case organization
    }

    package var id: String
    package var kind: Kind

    package init(id: String, kind: Kind) {
        self.id = id
        self.kind = kind
    }
}
