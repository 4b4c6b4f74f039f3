import TriggerModel

/// Where the PostgreSQL operation store lives and how long it waits for it.
package struct PostgresOperationStoreConfiguration: Sendable {
    package var host: String
    package var port: Int
    package var username: String
    package var password: String?
    package var database: String?
    /// Prefix of the store's table names (`<prefix>operations`, `<prefix>operation_blobs`,
    /// `<prefix>schema_version`): lets the store share a database, and tests isolate themselves.
    /// Letters, digits and `_` only.
    package var tablePrefix: String
    package var inlineBlobLimit: Int
    /// Every store call (connection wait included) that takes longer fails as `.unavailable`. PostgresNIO's
    /// pool keeps retrying an unreachable server for a long time, so without this a caller would hang.
    package var operationTimeout: Duration
    package var connectTimeout: Duration
    package var maximumConnections: Int

    package init(
        host: String,
        port: Int = 5432,
        username: String,
        password: String? = nil,
        database: String? = nil,
        tablePrefix: String = "trigger_",
        inlineBlobLimit: Int = 64 * 1024,
        operationTimeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(5),
        maximumConnections: Int = 10
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tablePrefix = tablePrefix
        self.inlineBlobLimit = inlineBlobLimit
        self.operationTimeout = operationTimeout
        self.connectTimeout = connectTimeout
        self.maximumConnections = maximumConnections
    }

    /// `postgres://user[:password]@host[:port][/database]` (also `postgresql://`). Percent-escapes in the user
    /// and password are decoded. TLS is not supported yet: the server must accept plain connections.
    package init(url: String) throws(ConfigurationError) {
        var rest = Substring(url)
        if rest.hasPrefix("postgres://") {
            rest = rest.dropFirst("postgres://".count)
        } else if rest.hasPrefix("postgresql://") {
            rest = rest.dropFirst("postgresql://".count)
        } else {
            throw ConfigurationError("expected a postgres:// URL, got \"\(url)\"")
        }
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        var database: String?
        if let slash = rest.firstIndex(of: "/") {
            let name = rest[rest.index(after: slash)...]
            database = name.isEmpty ? nil : Self.percentDecoded(name)
            rest = rest[..<slash]
        }
        guard let at = rest.lastIndex(of: "@") else { throw ConfigurationError("the URL has no user@host part") }
        let userInfo = rest[..<at]
        let hostPort = rest[rest.index(after: at)...]
        let user: Substring
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            user = userInfo[..<colon]
            password = Self.percentDecoded(userInfo[userInfo.index(after: colon)...])
        } else {
            user = userInfo
        }
        guard !user.isEmpty else { throw ConfigurationError("the URL has no user") }
        var host = hostPort
        var port = 5432
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
            guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(p) else {
                throw ConfigurationError("bad port in \"\(hostPort)\"")
            }
            port = p
            host = hostPort[..<colon]
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw ConfigurationError("the URL has no host") }
        self.init(
            host: String(host),
            port: port,
            username: Self.percentDecoded(user),
            password: password,
            database: database
        )
    }

    package struct ConfigurationError: Error, Sendable, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = "invalid PostgreSQL store configuration: \(description)" }
    }

    private static func percentDecoded(_ s: Substring) -> String {
        PercentDecoding.decode(s.utf8)
    }

    var validTablePrefix: Bool {
        tablePrefix.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: "_")
        }
    }
}
