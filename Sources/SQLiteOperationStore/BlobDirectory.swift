import FoundationEssentials
import NIOCore
import OperationStore
import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The files that hold an operation's large blobs: `<root>/<operation-id>/<name>`.
///
/// Every method blocks on disk I/O: callers run them on a thread pool, never on an event loop. Files are
/// fsynced (and their directories) before `write` returns, so a row committed afterwards never points at a
/// file a crash could lose.
struct BlobDirectory: Sendable {
    let root: String

    func directory(for operationID: String) -> String { "\(root)/\(operationID)" }

    func write(operationID: String, blobs: [SpilledBlob]) throws {
        guard !blobs.isEmpty else { return }
        let dir = directory(for: operationID)
        let created = !FileManager.default.fileExists(atPath: dir)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch let error as CocoaError where error.code == .fileWriteOutOfSpace {
            throw SpaceExhausted(description: "create directory \(dir): \(String(cString: strerror(ENOSPC)))")
        }
        for blob in blobs {
            try writeFile(path: "\(dir)/\(blob.name)", bytes: blob.bytes)
        }
        try syncDirectory(dir)
        if created { try syncDirectory(root) }
    }

    func read(operationID: String, name: String) throws -> ByteBuffer {
        let path = "\(directory(for: operationID))/\(name)"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            // A file the row names is gone for good (a data directory restored from a copy taken in the wrong
            // order, a file removed by hand): DATA_LOSS for this operation, not "the store is unavailable; retry",
            // which failed every claim that returned the row and so stopped the queue (review 27, H1).
            // The file is named under the data directory, not by its absolute path: the message reaches the client
            // (security review 60, I1), and the operator knows where `data_dir` is.
            if errno == ENOENT {
                throw GatewayError(
                    .dataLoss,
                    "operation \(operationID)'s stored file blobs/\(operationID)/\(name) (under the data directory) is "
                        + "missing (removed, or not restored with the database: README, \"Backing up the SQLite data "
                        + "directory\")")
            }
            throw Self.error("open", path)
        }
        defer { _ = close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Self.error("stat", path) }
        let size = Int(info.st_size)
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        var atEnd = false
        while buffer.readableBytes < size && !atEnd {
            let remaining = size - buffer.readableBytes
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: remaining) { raw -> Int in
                while true {
                    let n = systemRead(fd, raw.baseAddress, remaining)
                    if n >= 0 { return n }
                    if errno != EINTR { throw Self.error("read", path) }
                }
            }
            atEnd = n == 0
        }
        guard buffer.readableBytes == size else {
            throw GatewayError(.internalError, "blob file \(path) is shorter than it was")
        }
        return buffer
    }

    /// Removes one operation's blob directory; a missing one is fine.
    func remove(operationID: String) {
        try? FileManager.default.removeItem(atPath: directory(for: operationID))
    }

    func remove(operationID: String, names: [String]) {
        let dir = directory(for: operationID)
        for name in names { _ = unlink("\(dir)/\(name)") }
    }

    /// Ids of every operation that has a blob directory.
    func operationIDs() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    }

    private func writeFile(path: String, bytes: ByteBuffer) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.error("create", path) }
        defer { _ = close(fd) }
        try bytes.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = systemWrite(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Self.error("write", path)
                }
                offset += n
            }
        }
        guard fsync(fd) == 0 else { throw Self.error("fsync", path) }
    }

    private func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error("open directory", path) }
        defer { _ = close(fd) }
        guard fsync(fd) == 0 else { throw Self.error("fsync directory", path) }
    }

    /// `mkdir -p` that says which path failed and why in the words of the OS ("Permission denied", "Not a
    /// directory"), then checks the directory is writable. The directory itself, when created here, gets
    /// mode 0700 (it holds the inputs of async runs; components above it get the usual 0755); an existing
    /// one keeps its mode (see ``exposure(of:)``). Blocks: run it on a thread pool.
    static func makeWritableDirectory(_ path: String, what: String) throws(GatewayError) {
        // Each missing component in turn (mkdir -p); a failure names the component only when it is not the
        // directory itself ("cannot create the data directory /srv/a/b (at /srv/a): Permission denied").
        var prefix = path.hasPrefix("/") ? "/" : ""
        let components = path.split(separator: "/").filter { $0 != "." }
        for (index, component) in components.enumerated() {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            if mkdir(prefix, index == components.count - 1 ? 0o700 : 0o755) != 0, errno != EEXIST {
                let reason = String(cString: strerror(errno))
                let at = index == components.count - 1 ? "" : " (at \(prefix))"
                throw GatewayError(
                    .unavailable, "cannot create the \(what) \(path)\(at): \(reason)\(Self.relativeNote(path))")
            }
        }
        var isDirectory = stat()
        guard stat(path, &isDirectory) == 0, (isDirectory.st_mode & S_IFMT) == S_IFDIR else {
            throw GatewayError(.unavailable, "the \(what) \(path) is not a directory")
        }
        guard access(path, W_OK | X_OK) == 0 else {
            let reason = String(cString: strerror(errno))
            throw GatewayError(.unavailable, "the \(what) \(path) is not writable: \(reason)")
        }
    }

    /// ``SQLiteOperationStore/dataDirectoryProblem(_:)``: checked, never made.
    static func creationProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var candidate = path
        while true {
            var status = stat()
            if stat(candidate, &status) == 0 {
                guard (status.st_mode & S_IFMT) == S_IFDIR else { return "\(candidate) is not a directory" }
                guard access(candidate, W_OK | X_OK) == 0 else {
                    let reason = String(cString: strerror(errno))
                    return candidate == path
                        ? "\(path) is not writable: \(reason)"
                        : "cannot be created: \(candidate) is not writable: \(reason)"
                }
                return nil
            }
            guard errno == ENOENT || errno == ENOTDIR, let slash = candidate.lastIndex(of: "/"), candidate != "/" else {
                return "\(candidate): \(String(cString: strerror(errno)))"
            }
            candidate = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
        }
    }

    /// For a relative path, what it is relative to and where it comes from (review 9, finding 10:
    /// `./.trigger-gateway`, the default, fails under a service manager whose working directory is `/`).
    static func relativeNote(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return "" }
        let cwd = FileManager.default.currentDirectoryPath
        return " (a path relative to the working directory \(cwd); set an absolute --data-dir or data_dir)"
    }

    /// The permission bits of `path` when it is open to other users (any group or other bit), else nil.
    static func exposure(of path: String) -> mode_t? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        let exposed = status.st_mode & 0o077
        return exposed == 0 ? nil : status.st_mode & 0o777
    }

    /// Creates the file `path` empty with mode 0600 when it does not exist (an existing file keeps its mode).
    /// SQLite gives the `-wal` and `-shm` files it creates the main file's mode, so creating the database this
    /// way first keeps all three private. Blocks.
    static func createPrivateFileIfMissing(_ path: String, what: String) throws(GatewayError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            _ = close(fd)
        } else if errno != EEXIST {
            let reason = String(cString: strerror(errno))
            throw GatewayError(.unavailable, "cannot create the \(what) \(path): \(reason)")
        }
    }

    /// Throws when `path` exists but cannot be written (SQLite would open it read-only and fail later).
    static func checkWritableIfPresent(_ path: String, what: String) throws(GatewayError) {
        guard access(path, F_OK) == 0 else { return }
        guard access(path, W_OK) == 0 else {
            let reason = String(cString: strerror(errno))
            throw GatewayError(.unavailable, "the \(what) \(path) is not writable: \(reason)")
        }
    }

    private static func error(_ what: String, _ path: String) -> any Error {
        let reason = String(cString: strerror(errno))
        if errno == ENOSPC || errno == EDQUOT { return SpaceExhausted(description: "\(what) \(path): \(reason)") }
        return GatewayError(.unavailable, "operation store unavailable: \(what) \(path): \(reason)")
    }

    /// A blob file write refused for lack of space (`ENOSPC`, or `EDQUOT`: the user's quota on the disk):
    /// the store answers it as a full disk (`OperationStoreErrors.diskFullMessage`). `description`: the
    /// call, path and `strerror` text, for the log.
    struct SpaceExhausted: Error, CustomStringConvertible {
        var description: String
    }
}

// Free functions: inside `BlobDirectory`, `read`/`write` would name its own methods.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
