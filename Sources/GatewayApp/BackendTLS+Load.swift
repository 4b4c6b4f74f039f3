package import Backends
package import FoundationEssentials
package import GatewayConfig
package import GatewayServer
import NIOSSL

extension BackendTLS {
    /// The TLS of `pool` (`pools[index]` in the file), read from the files its `tls:` names; nil for a cleartext
    /// pool. ALPN follows the transport: `h2` for grpc pools, `http/1.1` for http pools.
    ///
    /// - Throws: `ListenerTLS.Failure` naming the key (`pools[1].tls.ca_file`, …) for an unreadable file, a CA
    ///   file with no certificate, a client key that is not the certificate's, or a client certificate outside
    ///   its validity period at `now` (the same checks as the listener's own certificate).
    package static func load(pool: PoolConfiguration, index: Int, now: Date = Date()) throws(ListenerTLS.Failure)
        -> BackendTLS?
    {
        guard let settings = pool.tls else { return nil }
        let keyPath = "pools[\(index)].tls"
        var roots: [NIOSSLCertificate]?
        if let caFile = settings.caFile {
            roots = try ListenerTLS.certificates(in: caFile, key: "\(keyPath).ca_file")
        }
        var identity: (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)?
        if let certFile = settings.certFile, let keyFile = settings.keyFile {
            let loaded = try ListenerTLS.identity(certFile: certFile, keyFile: keyFile, keyPath: keyPath, now: now)
            identity = (loaded.chain, loaded.key)
        }
        do {
            return try BackendTLS(
                trustRoots: roots,
                identity: identity,
                serverName: settings.serverName,
                applicationProtocols: pool.transport == .grpc ? ["h2"] : ["http/1.1"]
            )
        } catch {
            throw ListenerTLS.Failure(path: keyPath, message: "cannot build the TLS context: \(error)")
        }
    }
}
