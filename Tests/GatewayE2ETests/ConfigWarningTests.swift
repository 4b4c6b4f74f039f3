import Foundation
import GatewayTestSupport
import Testing

/// Review 10, findings 8 and 5, on the real executable: a file that loads but is likely not meant is said so by
/// `check-config` (still exit 0) and in `serve`'s log.
@Suite("config warnings: check-config and serve say them, and still load the file")
struct ConfigWarningTests {
    @Test("pools and no routes, an SI size: check-config warns on stderr and exits 0; serve logs both warnings")
    func poolsWithoutRoutesAndSISize() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-warn-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        limits: {max_body_bytes: 32MB}
        pools: [{name: a, transport: http, endpoints: ["127.0.0.1:9"]}]
        """.write(to: file, atomically: true, encoding: .utf8)
        let out = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdoutString.contains(": ok (1 pool, 0 routes"), "\(out.stdoutString)")
        #expect(
            out.stderr.contains(
                "warning: \(file.path): routes: no routes: every trigger will be 404 (no route matches it)"),
            "\(out.stderr)")
        #expect(
            out.stderr.contains(
                "warning: \(file.path): limits.max_body_bytes: 32MB is 32000000 bytes (an SI suffix: powers of 1000); "
                    + "the binary 32MiB would be 33554432"), "\(out.stderr)")
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            #expect(await server.stopAndReadLog())
            let warnings = server.logged.split(separator: "\n").filter { $0.contains("level=warning") }
            #expect(
                warnings.contains {
                    $0.contains("msg=\"no routes: every trigger will be 404") && $0.contains("config.key=routes")
                },
                "\(server.logged)")
            #expect(warnings.contains { $0.contains("config.key=limits.max_body_bytes") }, "\(server.logged)")
        }
    }

    /// Review 21, I2, on the real executable: check-config says which pool no route uses (exit 0); serve logs it;
    /// the example config README starts people from draws no warning.
    @Test("a pool no route uses: check-config warns (exit 0), serve logs it; the example config has no warning")
    func poolNoRouteUses() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-warn-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        pools:
          - {name: cpu, transport: http, endpoints: ["127.0.0.1:9"]}
          - {name: gpu, transport: grpc, endpoints: ["127.0.0.1:9"]}
        routes: [{namespace: demo, pool: cpu}]
        """.write(to: file, atomically: true, encoding: .utf8)
        let out = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stderr == "warning: \(file.path): pools[1]: pool \"gpu\": no route uses it\n", "\(out.stderr)")
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            #expect(await server.stopAndReadLog())
            let warnings = server.logged.split(separator: "\n").filter { $0.contains("level=warning") }
            #expect(
                warnings.filter { $0.contains("no route uses it") }.count == 1
                    && warnings.contains {
                        $0.contains(#"msg="pool \"gpu\": no route uses it""#) && $0.contains("config.key=pools[1]")
                    },
                "\(server.logged)")
        }
        let example = Peers.repositoryRoot.appendingPathComponent("scripts/example-config.yaml").path
        let checked = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", example])
        #expect(checked.status == 0 && !checked.stderr.contains("no route uses it"), "\(checked.stderr)")
    }

    /// Security review 60, M2: with tokens, a schedule without `operators` may no longer be paused, resumed or
    /// triggered by anyone, nor its runs cancelled. A file written before the key still loads, and says so; the
    /// example config names its operators. Before the fix there was no key and no warning.
    @Test("schedules and periodic deployments without operators, tokens required: check-config warns, serve logs")
    func scheduleWithoutOperators() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tg-warn-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        tokens: [{name: alice, token: alice-secret-0123456789}]
        schedules:
          - {name: nightly, cron: "@daily", route: {namespace: demo, pipeline: echo}}
          - {name: hourly, cron: "@hourly", route: {namespace: demo, pipeline: echo}, operators: [alice]}
        craft:
          deployments:
            - {name: tick, pipeline: echo, execution_rule: periodic, schedule: "@daily"}
        """.write(to: file, atomically: true, encoding: .utf8)
        let out = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", file.path])
        #expect(out.status == 0, "\(out.stderr)")
        let tail = "or cancel its runs (403); list the names of the tokens that may\n"
        #expect(
            out.stderr
                == "warning: \(file.path): craft.deployments[0].operators: absent: with tokens required, no caller may "
                + "pause, resume or trigger schedule \"craft.tick\" \(tail)"
                + "warning: \(file.path): schedules[0].operators: absent: with tokens required, no caller may pause, "
                + "resume or trigger schedule \"nightly\" \(tail)",
            "\(out.stderr)")
        try await ProcessTests.withGatewayProcess(["--config", file.path]) { server in
            #expect(await server.stopAndReadLog())
            let warnings = server.logged.split(separator: "\n").filter { $0.contains("level=warning") }
            #expect(warnings.contains { $0.contains("config.key=schedules[0].operators") }, "\(server.logged)")
            #expect(warnings.contains { $0.contains("config.key=craft.deployments[0].operators") }, "\(server.logged)")
            #expect(!warnings.contains { $0.contains("config.key=schedules[1]") }, "\(server.logged)")
        }
        let example = Peers.repositoryRoot.appendingPathComponent("scripts/example-config.yaml").path
        let checked = try await TestProcess.run(ProcessTests.gatewayPath, ["check-config", example])
        #expect(checked.status == 0 && !checked.stderr.contains("operators"), "\(checked.stderr)")
    }
}
