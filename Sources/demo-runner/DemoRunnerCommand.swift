import ArgumentParser
import Foundation
import DemoRunner
import HTTP2Engine
import NIOCore
import NIOPosix

/// `demo-runner --listen HOST:PORT --transport grpc|http`: the demo pipelines as a separate backend process.
///
/// Prints `listening on HOST:PORT` once bound, so a test can start it on port 0 and read the port.
@main
struct DemoRunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-runner",
        abstract: "Serve the demo pipelines (echo, upper, tokens, sleep, fail, blob-info) as a backend."
    )

    enum Transport: String, ExpressibleByArgument {
        case http
        case grpc
    }

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen: String = "127.0.0.1:9090"

    @Option(help: "Backend transport to serve: http or grpc.")
    var transport: Transport = .http

    @Option(
        help: """
            grpc: RST_STREAMs the gateway may send, BURST/PER_SECOND, before the connection is ended \
            (it resets one stream per cancelled or expired call; libnghttp2's defaults are 1000/33).
            """)
    var streamResetLimit: String =
        "\(DemoGRPCServer.defaultStreamResetRateLimit.burst)/"
        + "\(DemoGRPCServer.defaultStreamResetRateLimit.refillPerSecond)"

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen must be HOST:PORT, got \"\(listen)\"")
        }
        guard let resetLimit = DemoGRPCServer.streamResetRateLimit(parsing: streamResetLimit) else {
            throw ValidationError(
                "--stream-reset-limit must be BURST/PER_SECOND (BURST 1 to 1000000000, PER_SECOND 0 to 1000000000), got \"\(streamResetLimit)\""
            )
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let group = MultiThreadedEventLoopGroup.singleton
        // One line per cancelled run: how tests driving this process see that a client's disconnect reached it.
        let pipelines = DemoPipelines(
            cancellations: DemoPipelines.CancellationProbe(onRecord: { ref in
                let at = String(format: "%.3f", Date().timeIntervalSince1970)
                FileHandle.standardOutput.write(Data("cancelled \(ref) at \(at)\n".utf8))
            })
        )
        let channel: any Channel
        switch transport {
        case .http:
            channel = try await DemoHTTPServer.bind(host: host, port: port, runner: pipelines, group: group)
        case .grpc:
            channel = try await DemoGRPCServer.bind(
                host: host, port: port, runner: pipelines, group: group,
                streamResetRateLimit: resetLimit)
        }
        let address = channel.localAddress!
        // Written unbuffered: a pipe would otherwise hold the line back from the test that waits for it.
        let line = "listening on \(address.ipAddress ?? host):\(address.port ?? port) (\(transport.rawValue))\n"
        FileHandle.standardOutput.write(Data(line.utf8))
        try await channel.closeFuture.get()
    }
}
