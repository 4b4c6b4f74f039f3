/// One accepted bearer token and the principal it stands for (`tokens: [{name, token, requesters}]`).
package struct TokenConfiguration: Sendable, Equatable {
    /// The principal: what logs, metrics and backends see as "who sent it".
    package var name: String
    /// The secret itself. Never printed, not even in config errors.
    package var token: String
    /// `token_file`: the file `token` was read from, when it was (for its mode check); nil when inline.
    package var tokenFile: String?
    /// The namespaces this principal may act for besides itself (Instill's `instill-requester-uid`): exact
    /// namespace ids, or `*` for any. Empty: only itself.
    package var requesters: [String]

    package init(name: String, token: String, requesters: [String] = []) {
        self.name = name
        self.token = token
        self.requesters = requesters
    }
}
