import Foundation
import GatewayTestSupport
import Testing

/// systemd's `Type=notify` against the real executable (sd_notify(3); README's unit): the states the service
/// manager is told, in order, over a real datagram socket as `NOTIFY_SOCKET` names it.
@Suite("sd_notify: ready when listening, reloading around a SIGHUP, stopping at SIGTERM")
struct ServiceManagerNotifyTests {
    @Test(
        "READY=1 (with the address and MAINPID) once listening; RELOADING=1 with MONOTONIC_USEC then READY=1 for an applied and a refused reload; STOPPING=1 at SIGTERM"
    )
    func statesInOrder() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-notify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let receiver = try DatagramReceiver(path: directory.appendingPathComponent("notify").path)
        let config = directory.appendingPathComponent("gateway.yaml")
        try "listen: 127.0.0.1:0\n".write(to: config, atomically: true, encoding: .utf8)
        func next() async throws -> String { try await blocking { receiver.receive() } ?? "(nothing within 10 s)" }
        func fields(_ datagram: String) -> [String: String] {
            var result: [String: String] = [:]
            for line in datagram.split(separator: "\n") {
                let pair = line.split(separator: "=", maxSplits: 1)
                if pair.count == 2 { result[String(pair[0])] = String(pair[1]) }
            }
            return result
        }
        try await ProcessTests.withGatewayProcess(
            ["--config", config.path], environment: ["NOTIFY_SOCKET": receiver.path]
        ) { server in
            let ready = fields(try await next())
            #expect(ready["READY"] == "1", "\(ready)")
            #expect(ready["STATUS"] == "listening on 127.0.0.1:\(server.port)", "\(ready)")
            #expect(ready["MAINPID"] == "\(server.pid)", "\(ready)")

            server.signal(SIGHUP)
            let reloading = fields(try await next())
            #expect(reloading["RELOADING"] == "1", "\(reloading)")
            #expect(UInt64(reloading["MONOTONIC_USEC"] ?? "") ?? 0 > 0, "\(reloading)")
            let reloaded = fields(try await next())
            #expect(reloaded["READY"] == "1" && reloaded["STATUS"] == "configuration reloaded", "\(reloaded)")

            // A file that does not validate: refused, the running configuration serves, so ready again.
            try "listen: [\n".write(to: config, atomically: true, encoding: .utf8)
            server.signal(SIGHUP)
            #expect(fields(try await next())["RELOADING"] == "1")
            let refused = fields(try await next())
            #expect(refused["READY"] == "1", "\(refused)")
            #expect(refused["STATUS"]?.hasPrefix("configuration reload refused") == true, "\(refused)")

            server.signal(SIGTERM)
            #expect(fields(try await next())["STOPPING"] == "1")
        }
    }
}
