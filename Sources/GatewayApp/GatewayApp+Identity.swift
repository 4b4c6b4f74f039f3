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
        if let data = files.contents(atPath: path) {
            let text = String(String(decoding: data, as: UTF8.self).filter { !$0.isWhitespace })
            if !text.isEmpty, text.count <= 64, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) {
                return text
            }
        }
        let identity = Operation.makeID()
        do {
            try files.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            // Written whole to a temporary name, then renamed: a crash never leaves half an id behind.
            let temporary = path + ".tmp"
            try Data((identity + "\n").utf8).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
            return identity
        } catch {
            logger.warning(
                "no instance identity: leases of a previous run are taken back only when they expire",
                metadata: ["path": "\(path)", "error": "\(error)"]
            )
            return nil
        }
    }
}
