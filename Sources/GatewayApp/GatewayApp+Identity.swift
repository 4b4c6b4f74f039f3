#if canImport(Glibc)
    import Glibc
#endif
import FoundationEssentials
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
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let mode = attributes?[.posixPermissions] as? Int, mode & 0o077 != 0 else { return nil }
        return "the instance-id file \(path) is open to other users (mode 0\(String(mode & 0o777, radix: 8))); "
            + "the data directory's files are the gateway's alone: chmod 600 it"
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
