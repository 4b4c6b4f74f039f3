import ArgumentParser
import Observability

/// `trigger-gateway`: argument parsing and assembly only; everything else lives in the modules.
@main
struct TriggerGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger-gateway",
        abstract: "A sync/async trigger gateway for pipeline runners (REST, multipart, gRPC on one port).",
        version: GatewayBuild.version,
        subcommands: [ServeCommand.self, CheckConfigCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
