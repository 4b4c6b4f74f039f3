import ArgumentParser
import Foundation
import GatewayApp
import GatewayConfig

/// `check-config FILE`: validates and exits non-zero with every mistake of the file, one path-precise line each
/// in file order, then their count when there is more than one (`ConfigError.description`).
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file; prints what is wrong and where."
    )

    @Argument(help: "The YAML configuration file.")
    var file: String

    func run() throws {
        do {
            let (configuration, digest) = try ConfigFile.load(path: file, checkingDataDir: true)
            let periodic = configuration.craft.deployments?.filter { $0.schedule != nil }.count ?? 0
            let counts =
                "\(configuration.pools.count) pools, \(configuration.routes.count) routes, "
                + "\(configuration.schedules.count) schedules"
                + (periodic > 0 ? ", \(periodic) periodic Craft AI deployments" : "")
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
