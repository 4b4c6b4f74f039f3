import Backends
import CraftSurface
import Crypto
import FoundationEssentials
package import GatewayConfig
import GatewayServer
import TriggerModel

/// Reads a configuration file the way `serve`, `check-config` and a reload (SIGHUP) all must: parse,
/// validate (including the listen policy), and name the result by the SHA-256 of the bytes read, so the
/// digest logged at start and after each reload tells operators which file is running.
package enum ConfigFile {
    /// The digest reported when the gateway runs its embedded default (no file).
    package static let embeddedDigest = "embedded-default"

    /// The validated configuration in `path` and its digest (`sha256:<64 hex>`). `listen` overrides the
    /// file's address (`--listen`) before the listen policy is checked; `dataDir` likewise. `checkingDataDir`
    /// (`check-config`): also refuse a `data_dir` that `serve` could not make or write. `adminListen`
    /// (`--admin-listen`) overrides `admin.listen`, or adds an admin listener to a file without one, before the
    /// admin address is checked against the serving one (`validateAdminListen`).
    ///
    /// Throws the same path-precise `ConfigError` that `check-config` prints, with every independent mistake
    /// of the file (`ConfigMistakes`): the document's, then those of the files and URLs it names. Each of those
    /// later checks reads one section and is skipped when that section had a mistake (it would check a default
    /// or a list whose indices no longer match the file): the listen policy reads `listen`, `auth` and
    /// `tokens`; the TLS files `tls`; the Craft key and periodic inputs `craft`; the pools' TLS files `pools`;
    /// the PostgreSQL URL `store`; the webhooks' CA files `routes`.
    ///
    /// `inheritedListen`: the address of a listening socket the gateway was started with (systemd socket
    /// activation): it wins over `listen` and the file's `listen:` (the socket is what serves, whatever they say),
    /// and the listen policy is checked against it. When `listen` or the file's `listen:` names another address,
    /// a warning at `listen` says which one serves (not an error: a socket unit's `ListenStream=8080` is `[::]:8080`
    /// where the file says `0.0.0.0:8080`, and a restart must not fail for that).
    package static func load(
        path: String,
        listen: ListenAddress? = nil,
        inheritedListen: ListenAddress? = nil,
        dataDir: String? = nil,
        checkingDataDir: Bool = false,
        adminListen: ListenAddress? = nil
    ) throws(ConfigError) -> (configuration: GatewayConfiguration, digest: String) {
        let bytes: Data
        do {
            bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(
                source: path, path: "", message: "cannot read the file: \(notRegularFile(path) ?? describe(error))")
        }
        guard let text = String(data: bytes, encoding: .utf8) else {
            throw ConfigError(source: path, path: "", message: "the file is not UTF-8 text")
        }
        let mistakes = ConfigMistakes()
        var configuration = try GatewayConfiguration.read(yaml: text, source: path, recordingInto: mistakes)
        if let listen { configuration.listen = listen }
        if let inheritedListen {
            if listen != nil || mistakes.hasSection("listen") {
                configuration.warnings += inheritedListenWarnings(
                    configured: configuration.listen, inherited: inheritedListen, source: path)
            }
            configuration.listen = inheritedListen
        }
        if let dataDir { configuration.dataDir = dataDir }
        if let adminListen { configuration.applyAdminListen(adminListen) }
        /// Runs `check` unless one of `sections` had a mistake; records what it throws.
        func check(after sections: String..., run check: () throws(ConfigError) -> Void) {
            guard !sections.contains(where: mistakes.any(under:)) else { return }
            mistakes.collect(check)
        }
        check(after: "listen", "auth", "tokens") { () throws(ConfigError) in
            do throws(ConfigError) {
                try configuration.validateListenPolicy()
            } catch {
                // Named as it was set, as `--data-dir` is below: the flag's address, not the file's `listen:`.
                var refusal = error
                if listen != nil, inheritedListen == nil { refusal.path = "--listen" }
                throw refusal
            }
        }
        // The addresses in force, overrides applied: the admin port must not be the serving one.
        check(after: "listen", "admin") { () throws(ConfigError) in
            do throws(ConfigError) {
                try configuration.validateAdminListen()
            } catch {
                var refusal = error
                if adminListen != nil { refusal.path = "--admin-listen" }
                throw refusal
            }
        }
        if checkingDataDir, let problem = DataDirectoryLock.problem(ofDataDir: configuration.dataDir) {
            // `serve` makes data_dir (mkdir -p): say now when it could not (review 9, finding 10).
            check(after: "data_dir") { () throws(ConfigError) in
                // Named as it was set: `check-config --data-dir` checks the flag's directory, not the file's.
                throw ConfigError(source: path, path: dataDir == nil ? "data_dir" : "--data-dir", message: problem)
            }
        }
        // A periodic Craft AI deployment's inputs become an execution here (mappings, environment, cap); every
        // deployment's constants and defaults are of the types its pipeline declares.
        check(after: "craft") { () throws(ConfigError) in
            try CraftExecution.checkConfiguredValues(of: configuration.craft, source: path)
            _ = try CraftExecution.schedules(of: configuration.craft, source: path)
        }
        if let tls = configuration.tls {
            // The files `tls:` names are part of the configuration: unreadable or mismatched is a config error.
            check(after: "tls") { () throws(ConfigError) in
                do throws(ListenerTLS.Failure) {
                    _ = try ListenerTLS.load(tls)
                } catch {
                    throw ConfigError(source: path, path: error.path, message: error.message)
                }
            }
        }
        // And `craft.jwt_secret_file`: a key that does not load would switch the whole Craft AI surface off (404
        // on every call), so it is refused here like a TLS file — by check-config, at start and on reload, which
        // then keeps the running key. Without the key the gateway generates one in the data dir at start.
        if let secretFile = configuration.craft.jwtSecretFile {
            check(after: "craft") { () throws(ConfigError) in
                do throws(CraftSigningKey.KeyError) {
                    _ = try CraftSigningKey.load(secretFile: secretFile, dataDir: configuration.dataDir)
                } catch {
                    throw ConfigError(
                        source: path, path: "craft.jwt_secret_file",
                        message: "the access-token key \(error.path) \(error.reason)")
                }
            }
        }
        // Likewise the files a pool's `tls:` names (CA, client certificate and key), each pool on its own.
        for (index, pool) in configuration.pools.enumerated() {
            check(after: "pools") { () throws(ConfigError) in
                do throws(ListenerTLS.Failure) {
                    _ = try BackendTLS.load(pool: pool, index: index)
                } catch {
                    throw ConfigError(source: path, path: error.path, message: error.message)
                }
            }
        }
        // And the PostgreSQL URL's parameters and TLS files (`sslrootcert`, …): refused here rather than dropped.
        if configuration.store.kind == .postgres {
            check(after: "store") { () throws(ConfigError) in
                _ = try GatewayApp.postgresConfiguration(configuration)
            }
        }
        // And the CA file of each https webhook (the sender reads it again at each delivery).
        for (index, route) in configuration.routes.enumerated() {
            guard let caFile = route.webhook?.caFile else { continue }
            check(after: "routes") { () throws(ConfigError) in
                do throws(ListenerTLS.Failure) {
                    _ = try ListenerTLS.certificates(in: caFile, key: "routes[\(index)].webhook.ca_file")
                } catch {
                    throw ConfigError(source: path, path: error.path, message: error.message)
                }
            }
        }
        try mistakes.throwIfAny()
        return (configuration, digest(of: bytes))
    }

    /// The warning (none or one) for a configured `listen` that an inherited socket overrides: said when the two
    /// addresses differ, so an operator who changed `listen` learns that the socket unit decides.
    package static func inheritedListenWarnings(
        configured: ListenAddress, inherited: ListenAddress, source: String
    ) -> [ConfigError] {
        guard configured != inherited else { return [] }
        return [
            ConfigError(
                source: source, path: "listen",
                message: "serving on the inherited socket \(inherited) (systemd socket activation), not on "
                    + "\(configured): the socket unit's ListenStream= decides the address; "
                    + "change it there (or make listen match it)")
        ]
    }

    /// `sha256:<hex>` of `bytes`.
    static func digest(of bytes: Data) -> String {
        "sha256:" + SHA256.hash(data: bytes).lowercaseHex
    }

    /// Why `path`, which could not be read, is no file to read ("is a directory", "is not a regular file"); nil
    /// for a regular file or a path that cannot be looked at (its read error says why). Foundation's own error
    /// for a directory was a dump of `NSCocoaErrorDomain Code=256`, and for a device "permission denied".
    private static func notRegularFile(_ path: String) -> String? {
        // Through symbolic links (`attributesOfItem` describes the link itself): a link to a directory is one.
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let type = try? FileManager.default.attributesOfItem(atPath: target)[.type] as? FileAttributeType else {
            return nil
        }
        switch type {
        case .typeRegular: return nil
        case .typeDirectory: return "is a directory"
        default: return "is not a regular file"
        }
    }

    /// The reason a file could not be read, without Foundation's domain and code noise.
    private static func describe(_ error: any Error) -> String {
        if let error = error as? CocoaError {
            switch error.code {
            case .fileReadNoSuchFile: return "no such file"
            case .fileReadNoPermission: return "permission denied"
            default: break
            }
        }
        return "\(error)"
    }
}
