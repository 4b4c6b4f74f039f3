import ArgumentParser
import Foundation
import GatewayApp
import GatewayConfig

/// `check-config FILE [--listen HOST:PORT] [--admin-listen HOST:PORT] [--data-dir DIR]`: validates and exits non-zero with every mistake of the
/// file, one path-precise line each in file order, then their count when there is more than one
/// (`ConfigError.description`). `--listen` and `--data-dir` override the file as `serve`'s do, so a unit's
/// `ExecStartPre=` given `ExecStart=`'s flags checks what `serve` will run: the listen policy against the address
/// that serves, the data directory that will be made.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file; prints what is wrong and where."
    )

    @Argument(help: "The YAML configuration file.")
    var file: String

    @Option(help: "Address serve will listen on, HOST:PORT (as serve's --listen: overrides the file).")
    var listen: String?

    @Option(help: "Address serve's admin listener will use, HOST:PORT (as serve's --admin-listen).")
    var adminListen: String?

    @Option(help: "Directory serve will use for its store and blobs (as serve's --data-dir: overrides the file).")
    var dataDir: String?

    func run() throws {
        do {
            let listenOverride = try listen.map { text throws(ConfigError) in try ListenAddress(parsingFlag: text) }
            let adminOverride = try adminListen.map { text throws(ConfigError) in
                try ListenAddress(parsingFlag: text, flag: "--admin-listen")
            }
            let (configuration, digest) = try ConfigFile.load(
                path: file, listen: listenOverride, dataDir: dataDir, checkingDataDir: true, adminListen: adminOverride)
            let periodic = configuration.craft.deployments?.filter { $0.schedule != nil }.count ?? 0
            /// "1 pool", "2 pools".
            func count(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }
            let counts =
                "\(count(configuration.pools.count, "pool")), \(count(configuration.routes.count, "route")), "
                + count(configuration.schedules.count, "schedule")
                + (periodic > 0 ? ", \(count(periodic, "periodic Craft AI deployment"))" : "")
            for warning in configuration.warnings {
                FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
            }
            print("\(file): ok (\(counts), \(digest))")
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

extension ListenAddress {
    /// `--listen`'s (or `flag`'s: `--admin-listen`) value (serve, check-config), its error naming the flag and the
    /// value given (the parser's own message says what is missing, not where it came from).
    init(parsingFlag text: String, flag: String = "--listen") throws(ConfigError) {
        do {
            try self.init(parsing: text)
        } catch {
            throw ConfigError(source: "\(flag) \(text)", path: "", message: "\(error)")
        }
    }
}
