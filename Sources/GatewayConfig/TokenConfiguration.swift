/// One accepted bearer token and the principal it stands for (`tokens: [{name, token}]`).
package struct TokenConfiguration: Sendable, Equatable {
    /// The principal: what logs, metrics and backends see as "who sent it".
    package var name: String
    /// The secret itself. Never printed, not even in config errors.
    package var token: String

    package init(name: String, token: String) {
        self.name = name
        self.token = token
    }
}
