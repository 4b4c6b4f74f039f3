#if canImport(Glibc)
    import Glibc
#endif
import SQLiteOperationStore
import TriggerModel

/// The data directory's owner: an advisory `flock(2)` (`LOCK_EX | LOCK_NB`) on `<dataDir>/trigger-gateway.lock`,
/// held by `serve` for its whole life, so a second gateway on the same directory refuses to start (as Prometheus,
/// etcd and PostgreSQL refuse a data directory already in use).
///
/// Why: the directory holds this instance's identity (`instance-id`) and, with SQLite, its store. A second process
/// on it would take the first one's leases back as a restart does ("took back the leases of this instance's previous
/// run") and run its running operations a second time. The kernel drops the lock when the process ends, however
/// it ends (`kill -9` included), so a restart never finds a stale lock; the pid written in the file only names the
/// holder in the refusal. `check-config` does not take it (it reads no data).
package struct DataDirectoryLock: ~Copyable {
    /// The lock file's name in the data directory.
    package static let fileName = "trigger-gateway.lock"

    /// Why the lock was not taken; `description` is the one line `serve` prints before it exits non-zero.
    package struct Failure: Error, CustomStringConvertible {
        package var path: String
        /// The holder's pid as its file says, when it says one.
        package var holder: Int32?
        /// Nil: another process holds the lock. Otherwise the system call that failed and its `errno` text.
        package var systemError: String?
        /// The data directory could not be made (the whole line, naming the path and the reason).
        package var directoryError: String?

        package var description: String {
            if let directoryError { return directoryError }
            if let systemError {
                return "cannot lock the data directory: \(path): \(systemError)"
            }
            let who = holder.map { "another trigger-gateway (pid \($0))" } ?? "another trigger-gateway"
            return "the data directory is in use by \(who): \(path) is locked; "
                + "each instance needs its own data_dir (--data-dir)"
        }
    }

    private let descriptor: Int32
    package let path: String

    /// Creates `dataDir` when missing, then takes the lock without waiting and writes this process's pid in the file.
    /// Throws `Failure` when another process holds it or the file cannot be opened.
    package init(dataDir: String) throws(Failure) {
        let path = dataDir.hasSuffix("/") ? dataDir + Self.fileName : "\(dataDir)/\(Self.fileName)"
        do {
            try SQLiteOperationStore.prepareDataDirectory(dataDir)
        } catch {
            throw Failure(path: path, directoryError: error.message)
        }
        // Not O_TRUNC: the file may be a live holder's, whose pid the refusal names.
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Failure(path: path, systemError: "open: \(Self.errnoText())") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            defer { close(descriptor) }
            guard code == EWOULDBLOCK else {
                throw Failure(path: path, systemError: "flock: \(String(cString: strerror(code)))")
            }
            throw Failure(path: path, holder: Self.readPID(descriptor))
        }
        let line = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = line.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        self.descriptor = descriptor
        self.path = path
    }

    /// The warning `serve` logs once when `dataDir` is open to other users
    /// (``SQLiteOperationStore/dataDirectoryExposure(_:)``), nil when it is private.
    package static func exposure(ofDataDir dataDir: String) -> String? {
        SQLiteOperationStore.dataDirectoryExposure(dataDir)
    }

    /// Why `serve` could not make or write `dataDir`, as far as `check-config` can tell without making it
    /// (``SQLiteOperationStore/dataDirectoryProblem(_:)``); nil when it looks fine or is relative.
    package static func problem(ofDataDir dataDir: String) -> String? {
        SQLiteOperationStore.dataDirectoryProblem(dataDir)
    }

    /// Ends the lock (the process's end does the same, however it ends).
    deinit { close(descriptor) }

    /// Ends the lock here: `serve` calls it last, so the lock surely lasts as long as the gateway runs.
    package consuming func release() {}

    private static func readPID(_ descriptor: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[..<count], as: UTF8.self).filter { !$0.isWhitespace }
        return Int32(text).flatMap { $0 > 0 ? $0 : nil }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
