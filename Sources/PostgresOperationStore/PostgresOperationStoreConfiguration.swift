package import FoundationEssentials
package import NIOSSL
import PostgresNIO
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
    /// TLS to the server (`sslmode` and friends in the URL, see `TLSSettings`).
    package var tls: TLSSettings
    /// `application_name` in the URL: what `pg_stat_activity` shows for the gateway's connections.
    package var applicationName: String?
    /// The wall clock that stamps what the store times itself: an enqueue's `created_at`/`not_before` and a
    /// cancel's `finished_at` (every other time is the caller's `now`), as `SQLiteOperationStore.Configuration.now`.
    /// Tests move it with their virtual clock.
    package var now: @Sendable () -> Date = { Date() }

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
        maximumConnections: Int = 10,
        tls: TLSSettings = TLSSettings(mode: .prefer),
        applicationName: String? = nil
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
        self.tls = tls
        self.applicationName = applicationName
    }

    /// libpq's connection parameters this store takes in the URL's query; any other is refused (libpq refuses
    /// an unknown one too, and a silently dropped `sslmode` once meant cleartext: review 9 #1).
    package static let urlParameters = [
        "sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "connect_timeout",
    ]

    /// `postgres://user[:password]@host[:port][/database][?param=value&…]` (also `postgresql://`).
    /// Percent-escapes in the user, password, database and parameter values are decoded.
    ///
    /// Parameters, with libpq's meaning (PostgreSQL docs, "libpq — Connection Strings" / "SSL Support"):
    /// - `sslmode`: `disable`, `prefer` (the default, as libpq's), `require`, `verify-ca`, `verify-full`.
    ///   `allow` (cleartext first, TLS only if the server insists) is refused: PostgresNIO cannot retry in TLS.
    /// - `sslrootcert`: a PEM file of the CA certificates the server's certificate is verified against, or
    ///   `system` (the system's trust store). Needed by `verify-ca`/`verify-full`; with `require` it makes the
    ///   mode act as `verify-ca`, as in libpq.
    /// - `sslcert` + `sslkey`: PEM client certificate (and chain) and its key, for `clientcert` authentication.
    /// - `application_name`: sent in the start-up packet.
    /// - `connect_timeout`: seconds (an integer, at least 2 as libpq rounds) to wait for a connection.
    ///
    /// The files are read by the caller (`tlsConfiguration` is built from them), not here.
    /// - Throws: `ConfigurationError` naming the parameter for an unknown parameter or a bad value.
    package init(url: String) throws(ConfigurationError) {
        var rest = Substring(url)
        if rest.hasPrefix("postgres://") {
            rest = rest.dropFirst("postgres://".count)
        } else if rest.hasPrefix("postgresql://") {
            rest = rest.dropFirst("postgresql://".count)
        } else {
            throw ConfigurationError("expected a postgres:// URL, got \"\(url)\"")
        }
        var parameters: [(name: String, value: String)] = []
        if let query = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: query)...].split(separator: "&", omittingEmptySubsequences: true) {
                let eq = pair.firstIndex(of: "=") ?? pair.endIndex
                let name = Self.percentDecoded(pair[..<eq])
                let value = eq == pair.endIndex ? "" : Self.percentDecoded(pair[pair.index(after: eq)...])
                parameters.append((name, value))
            }
            rest = rest[..<query]
        }
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
        // libpq's Unix-socket form (a percent-encoded directory as host, `%2Frun%2Fpostgresql`): refused here, not
        // resolved as a DNS name at the first connect (review 27 L4). The gateway connects over TCP only.
        guard !host.contains("%"), !host.contains("/") else {
            throw ConfigurationError(
                "\"\(host)\" is not a host name or address: a Unix-socket directory (libpq's %2F… form) is not "
                    + "supported; use host:port over TCP (e.g. 127.0.0.1:5432)")
        }
        self.init(
            host: String(host),
            port: port,
            username: Self.percentDecoded(user),
            password: password,
            database: database
        )
        try applyParameters(parameters)
    }

    private mutating func applyParameters(_ parameters: [(name: String, value: String)]) throws(ConfigurationError) {
        var mode: TLSSettings.Mode?
        for (name, value) in parameters {
            switch name {
            case "sslmode":
                guard let parsed = TLSSettings.Mode(rawValue: value) else {
                    if value == "allow" {
                        throw ConfigurationError(
                            "sslmode=allow is not supported (it falls back to TLS only when the server refuses "
                                + "cleartext, which PostgresNIO cannot do): use prefer, require, verify-ca or "
                                + "verify-full")
                    }
                    throw ConfigurationError(
                        "sslmode=\(value) is not one of disable, prefer, require, verify-ca, verify-full")
                }
                mode = parsed
            case "sslrootcert": tls.rootCertificate = value.isEmpty ? nil : value
            case "sslcert": tls.certificate = value.isEmpty ? nil : value
            case "sslkey": tls.key = value.isEmpty ? nil : value
            case "application_name": applicationName = value.isEmpty ? nil : value
            case "connect_timeout":
                // libpq: an integer of seconds; 0, negative or absent is "wait forever", and 1 counts as 2.
                // Here a wait is always bounded, so only a positive value is taken.
                guard let seconds = Int(value), seconds > 0, seconds <= 3600 else {
                    throw ConfigurationError("connect_timeout=\(value) is not a whole number of seconds from 1 to 3600")
                }
                connectTimeout = .seconds(max(2, seconds))
            default:
                throw ConfigurationError(
                    "the URL parameter \"\(name)\" is not supported (supported: "
                        + Self.urlParameters.joined(separator: ", ") + ")")
            }
        }
        tls.mode = mode ?? .prefer
        if tls.mode == .require, tls.rootCertificate != nil { tls.mode = .verifyCA }
        if tls.mode == .disable, tls.rootCertificate != nil || tls.certificate != nil {
            throw ConfigurationError("sslmode=disable with sslrootcert/sslcert: the files would not be used")
        }
        if tls.mode.verifiesCertificate, tls.rootCertificate == nil {
            throw ConfigurationError(
                "sslmode=\(tls.mode.rawValue) needs sslrootcert (a PEM file of the CA certificates, or \"system\")")
        }
        if (tls.certificate == nil) != (tls.key == nil) {
            throw ConfigurationError("sslcert and sslkey go together (the client certificate and its key)")
        }
    }

    /// TLS to PostgreSQL, as libpq's `sslmode` and file parameters describe it.
    package struct TLSSettings: Sendable, Equatable {
        package enum Mode: String, Sendable {
            /// Cleartext only.
            case disable
            /// TLS when the server offers it (certificate not verified), else cleartext.
            case prefer
            /// TLS or no connection; the certificate is not verified.
            case require
            /// TLS, and the server's certificate must chain to `sslrootcert`.
            case verifyCA = "verify-ca"
            /// As `verifyCA`, and the certificate must name the host of the URL (an IP: an IP SAN).
            case verifyFull = "verify-full"

            package var verifiesCertificate: Bool { self == .verifyCA || self == .verifyFull }
        }
        package var mode: Mode
        /// `sslrootcert`: a PEM file path, or `system`.
        package var rootCertificate: String?
        /// `sslcert`: a PEM client certificate file.
        package var certificate: String?
        /// `sslkey`: the client certificate's PEM key file.
        package var key: String?
        /// What `rootCertificate` names, loaded by the caller (`GatewayApp.loadPostgresTLS`: the file's
        /// certificates, or `.default` for `system`). Needed by `verify-ca` and `verify-full`.
        package var trustRoots: NIOSSLTrustRoots?
        /// What `certificate` and `key` name, loaded by the caller.
        package var identity: (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)?

        /// NIOSSL's client configuration for this mode: nil for `disable`. `prefer` and `require` encrypt but do
        /// not verify the certificate (libpq's meaning: they protect against passive listeners only); the
        /// `verify-*` modes trust only `trustRoots`, and `verify-full` also checks the host name (or IP SAN).
        package var clientConfiguration: TLSConfiguration? {
            guard mode != .disable else { return nil }
            var configuration = TLSConfiguration.makeClientConfiguration()
            switch mode {
            case .disable, .prefer, .require: configuration.certificateVerification = .none
            case .verifyCA: configuration.certificateVerification = .noHostnameVerification
            case .verifyFull: configuration.certificateVerification = .fullVerification
            }
            if let trustRoots { configuration.trustRoots = trustRoots }
            if let identity {
                configuration.certificateChain = identity.chain.map { .certificate($0) }
                configuration.privateKey = .privateKey(identity.key)
            }
            return configuration
        }

        /// PostgresNIO's mode: `prefer` asks for TLS and goes on in cleartext when the server declines; the others
        /// fail the connection then (`PSQLError.sslUnsupported`).
        var clientTLS: PostgresClient.Configuration.TLS {
            guard let configuration = clientConfiguration else { return .disable }
            return mode == .prefer ? .prefer(configuration) : .require(configuration)
        }

        package init(mode: Mode, rootCertificate: String? = nil, certificate: String? = nil, key: String? = nil) {
            self.mode = mode
            self.rootCertificate = rootCertificate
            self.certificate = certificate
            self.key = key
        }

        package static func == (a: Self, b: Self) -> Bool {
            a.mode == b.mode && a.rootCertificate == b.rootCertificate && a.certificate == b.certificate
                && a.key == b.key
        }
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
