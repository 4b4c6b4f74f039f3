package import GatewayConfig
import GatewayServer
import NIOSSL
package import PostgresOperationStore

extension GatewayApp {
    /// The PostgreSQL store's settings for `config` (`store.url` parsed, `table_prefix`, the pool size), with
    /// the TLS files the URL names (`sslrootcert`, `sslcert`, `sslkey`) read and checked: `check-config`, the
    /// start and a reload (SIGHUP) all refuse a configuration whose files do not load, as for the listener's
    /// and the pools' TLS files.
    ///
    /// - Throws: `ConfigError` at path `store.url`: a bad URL, an unsupported parameter, an unreadable or
    ///   non-PEM file, a client key that is not the certificate's, or a client certificate out of its validity.
    package static func postgresConfiguration(_ config: GatewayConfiguration) throws(ConfigError)
        -> PostgresOperationStoreConfiguration
    {
        var configuration: PostgresOperationStoreConfiguration
        do {
            configuration = try PostgresOperationStoreConfiguration(url: config.store.url ?? "")
        } catch {
            throw ConfigError(source: config.source, path: "store.url", message: error.description)
        }
        configuration.tablePrefix = config.store.tablePrefix
        if let password = config.store.password { configuration.password = password }
        configuration.maximumConnections = config.store.postgresPoolSize
        do {
            switch configuration.tls.rootCertificate {
            case nil: break
            // libpq 16's special value: the system's trust store.
            case "system": configuration.tls.trustRoots = .default
            case let file?:
                configuration.tls.trustRoots = .certificates(
                    try ListenerTLS.certificates(in: file, key: "store.url"))
            }
            if let certFile = configuration.tls.certificate, let keyFile = configuration.tls.key {
                let identity = try ListenerTLS.identity(certFile: certFile, keyFile: keyFile, keyPath: "store.url")
                configuration.tls.identity = (identity.chain, identity.key)
            }
        } catch {
            throw ConfigError(
                source: config.source, path: "store.url",
                message: "the TLS files of the PostgreSQL URL (sslrootcert, sslcert, sslkey): \(error.message)")
        }
        return configuration
    }
}
