#if canImport(Glibc)
    import Glibc
#endif
import CraftSurface
import FoundationEssentials
package import GatewayConfig
import Logging
import OperationStore

extension GatewayApp {
    /// This instance's identity across restarts: the id in `<dataDir>/instance-id`, made on first start.
    ///
    /// The async dispatcher names its lease owners after it, so a restarted instance knows the leases its dead
    /// process left behind and takes them back at once (issue 13 item 8). Two instances must not share a data
    /// directory (they would end each other's leases on restart); each instance of a PostgreSQL deployment has its
    /// own, as it has its own blob directory. Nil, with a warning, when the directory cannot hold the file: the
    /// dispatcher then waits for leases to expire, as without this.
    static func instanceIdentity(dataDir: String, logger: Logger) -> String? {
        let path = dataDir.hasSuffix("/") ? dataDir + "instance-id" : dataDir + "/instance-id"
        let files = FileManager.default
        // What was wrong with a file that was there: an id replaced silently lost the at-once takeover of the
        // previous run's leases with nothing in the log (review 9 #15).
        var replaced: String?
        if files.fileExists(atPath: path) { replaced = "cannot be read" }
        if let data = files.contents(atPath: path) {
            replaced = "does not hold an instance id (1 to 64 ASCII letters and digits)"
            let text = String(String(decoding: data, as: UTF8.self).filter { !$0.isWhitespace })
            if !text.isEmpty, text.count <= 64, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) {
                if let exposure = exposure(ofInstanceIDFile: path) {
                    logger.warning("\(exposure)", metadata: ["path": "\(path)"])
                }
                return text
            }
        }
        let identity = Operation.makeID()
        do {
            try files.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            // Written whole to a temporary name, then renamed: a crash never leaves half an id behind.
            try writePrivateFile(path, contents: identity + "\n")
            if let replaced {
                logger.warning(
                    """
                    the instance-id file \(path) \(replaced): replaced with a new id; leases of a previous run are \
                    taken back only when they expire
                    """,
                    metadata: ["path": "\(path)", "instance": "\(identity)"]
                )
            }
            return identity
        } catch {
            logger.warning(
                "no instance identity: leases of a previous run are taken back only when they expire",
                metadata: ["path": "\(path)", "error": "\(error)"]
            )
            return nil
        }
    }

    /// A warning for the operator when the instance-id file at `path` is open to other users (a group or other
    /// permission bit: one an older version made 0644, or one copied by hand), naming it and its mode; nil when
    /// it is private. Like the store's files (0600) and the data directory (0700), the gateway's state is its
    /// user's alone; it warns, as for the data directory, rather than changing an operator's file.
    static func exposure(ofInstanceIDFile path: String) -> String? {
        exposure(of: path, "the instance-id file \(path)", "the data directory's files are the gateway's alone")
    }

    /// Warnings for the secret keys the configuration names that are open to other users (review 9, finding 8):
    /// the Craft AI signing key (`craft.jwt_secret_file`, or the one generated into `data_dir`), whose reader can
    /// mint access tokens for any principal, and the private keys of the listener's and the pools' TLS
    /// (`tls.key_file`, `pools[].tls.key_file`). Each is `(path, message)`; a file that is missing or private
    /// gives none (a missing one is refused by the configuration's own check). sshd refuses such keys outright;
    /// the gateway warns, as for its data directory, and leaves the operator's file alone.
    package static func exposedKeyFiles(_ configuration: GatewayConfiguration) -> [(path: String, message: String)] {
        var keys: [(String, String)] = []
        if let secretFile = configuration.craft.jwtSecretFile {
            keys.append((secretFile, "craft.jwt_secret_file"))
        } else {
            let dataDir = configuration.dataDir
            let name = CraftSigningKey.generatedFileName
            keys.append((dataDir.hasSuffix("/") ? dataDir + name : "\(dataDir)/\(name)", "the Craft AI signing key"))
        }
        if let tls = configuration.tls { keys.append((tls.keyFile, "tls.key_file")) }
        // The secrets read from files (review 27 M2).
        for (i, token) in configuration.tokens.enumerated() {
            if let file = token.tokenFile { keys.append((file, "tokens[\(i)].token_file")) }
        }
        if let file = configuration.store.passwordFile { keys.append((file, "store.password_file")) }
        for route in configuration.routes {
            if let file = route.webhook?.secretFile { keys.append((file, "a route's webhook.secret_file")) }
        }
        for pool in configuration.pools {
            if let keyFile = pool.tls?.keyFile { keys.append((keyFile, "pools[\(pool.name)].tls.key_file")) }
        }
        return keys.compactMap { path, what in
            exposure(of: path, "\(what) \(path)", "a secret key must be readable by the gateway's user alone")
                .map { (path, $0) }
        }
    }

    /// "`what` is open to other users (mode 0644); `why`: chmod 600 it" when `path` has a group or other
    /// permission bit; nil when it is private or cannot be read.
    private static func exposure(of path: String, _ what: String, _ why: String) -> String? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let mode = attributes?[.posixPermissions] as? Int, mode & 0o077 != 0 else { return nil }
        return "\(what) is open to other users (mode 0\(String(mode & 0o777, radix: 8))); \(why): chmod 600 it"
    }

    /// Writes `contents` to `path` atomically with mode 0600 from the start (`open` with the mode, as the data
    /// dir's other files are made: never a moment at the umask's 0644): a temporary file created exclusively
    /// (any stale one from a crash is removed first, since `O_CREAT` would keep its mode), written, synced,
    /// then renamed over `path`.
    static func writePrivateFile(_ path: String, contents: String) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let writeErrno = errno
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0, rename(temporary, path) == 0 else {
            let code = written < 0 ? writeErrno : errno
            unlink(temporary)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
    }
}
