import Yams

/// The admin listener (`admin:`): a second, HTTP/1.1-only port for operators, serving `/metrics`, `/healthz` and
/// `/readyz` and nothing else (security review 60, I4).
///
/// Why a port of its own, as Envoy's `admin.address` and nghttpx's health-monitor frontend (`--frontend=…;healthmon`)
/// have one: on the serving port a probe shares `limits.max_connections` and `limits.max_connections_per_peer`
/// with every client, so a gateway whose clients fill the caps answered its own readiness probe by closing the
/// connection, and every client could read the metrics. The admin port has its own small cap, is left out of the
/// serving caps and metrics, and with ``metricsOnServingPort`` false the serving port's `/metrics` is 404.
///
/// Absent (the default), there is no admin listener and nothing changes. Its endpoints answer without a token,
/// like the probes on the serving port: put it on loopback or a network only the operator's tools reach.
package struct AdminConfiguration: Sendable, Equatable {
    /// `admin.listen`: where it listens (`127.0.0.1:9901`; port 0 picks a free one). Required in an `admin:`
    /// block; read at start-up (a reload that changes it logs "restart required").
    package var listen: ListenAddress
    /// `admin.metrics_on_serving_port`: whether the serving port still answers `GET /metrics` (default true, as
    /// before there was an admin port); false: the serving port answers it 404, as an unknown path, in the
    /// client's protocol. A reload applies it.
    package var metricsOnServingPort: Bool
    /// `admin.max_connections`: open connections on the admin port at most (default 16, a few probers and a
    /// scraper); one accepted over it is closed at once. Counted apart from `limits.max_connections`. Read at
    /// start-up.
    package var maxConnections: Int

    package init(listen: ListenAddress, metricsOnServingPort: Bool = true, maxConnections: Int = 16) {
        self.listen = listen
        self.metricsOnServingPort = metricsOnServingPort
        self.maxConnections = maxConnections
    }

    package static let maxConnectionsRange = 1...1024

    /// Whether `listen` and `other` are one socket address to bind: the same port (not 0, which the kernel picks
    /// apart for each) and the same host, or either host a wildcard (`0.0.0.0`, `::`), which takes the port on
    /// every address. Hosts given by name are compared as written: a clash hidden by a name is bind's error.
    package static func sameBinding(_ listen: ListenAddress, _ other: ListenAddress) -> Bool {
        guard listen.port != 0, listen.port == other.port else { return false }
        let wildcards: Set<String> = ["0.0.0.0", "::", "*"]
        return listen.host == other.host || wildcards.contains(listen.host) || wildcards.contains(other.host)
    }
}

extension GatewayConfiguration {
    static func readAdmin(_ node: Node, _ reader: ConfigNodeReader) throws(ConfigError) -> AdminConfiguration {
        let m = try reader.mapping(
            node, at: "admin", allowed: ["listen", "metrics_on_serving_port", "max_connections"])
        guard let listenNode = m["listen"] else {
            throw reader.error(
                m.path("listen"), node,
                "missing (required): the admin listener's address, e.g. \"127.0.0.1:9901\" (remove `admin:` for none)")
        }
        let text = try reader.string(listenNode, at: m.path("listen"))
        var admin: AdminConfiguration
        do throws(ListenAddressError) {
            admin = AdminConfiguration(listen: try ListenAddress(parsing: text))
        } catch {
            throw reader.error(m.path("listen"), listenNode, "bad address \"\(text)\": \(error.message)")
        }
        if let n = m["metrics_on_serving_port"] {
            admin.metricsOnServingPort = try reader.bool(n, at: m.path("metrics_on_serving_port"))
        }
        if let n = m["max_connections"] {
            admin.maxConnections = try reader.int(
                n, at: m.path("max_connections"), in: AdminConfiguration.maxConnectionsRange)
        }
        return admin
    }

    /// `--admin-listen`: the admin listener's address, over the file's `admin.listen`; a file without `admin:`
    /// gets an admin listener with the other keys' defaults.
    package mutating func applyAdminListen(_ address: ListenAddress) {
        if admin == nil {
            admin = AdminConfiguration(listen: address)
        } else {
            admin?.listen = address
        }
    }

    /// Refuses an admin listener on the serving listener's address (`AdminConfiguration.sameBinding`): one of the
    /// two would fail to bind, with a less clear message. Call it after applying `--listen` and `--admin-listen`,
    /// since the addresses actually used are what matter.
    package func validateAdminListen() throws(ConfigError) {
        guard let admin, AdminConfiguration.sameBinding(admin.listen, listen) else { return }
        throw ConfigError(
            source: source, path: "admin.listen",
            message: "\(admin.listen) is the serving listener's address (listen: \(listen)): give the admin listener "
                + "a port of its own")
    }
}
