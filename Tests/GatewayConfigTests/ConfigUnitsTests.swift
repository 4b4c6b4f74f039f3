import Foundation
import GatewayConfig
import Testing

@Suite("Config units, listen addresses and the listen policy")
struct ConfigUnitsTests {
    @Test(
        "durations parse exactly",
        arguments: [
            ("500ms", Duration.milliseconds(500)),
            ("30s", .seconds(30)),
            ("2m", .seconds(120)),
            ("1h", .seconds(3600)),
            ("1m30s", .seconds(90)),
            ("1.5s", .milliseconds(1500)),
            ("0.1s", .milliseconds(100)),
            ("0.5h", .seconds(1800)),
            ("30", .seconds(30)),
            ("0.25", .milliseconds(250)),
            ("0", .zero),
            ("250us", .microseconds(250)),
            ("7ns", .nanoseconds(7)),
            ("8784h", .seconds(366 * 24 * 3600)),
        ] as [(String, Duration)]
    )
    func durations(text: String, expected: Duration) {
        #expect(ConfigUnits.parseDuration(text) == expected)
    }

    @Test(
        "bad durations are refused",
        arguments: [
            "", "s", "ms", "-1s", "1d", "1 s", "1s ", "30 seconds", "1.2.3s", "30s5", "8785h", "99999999999999999999s",
        ]
    )
    func badDurations(text: String) {
        #expect(ConfigUnits.parseDuration(text) == nil)
    }

    @Test(
        "capped durations: the grammar is the same, a duration too long for any setting reads as the longest",
        arguments: [
            ("30s", Duration.seconds(30)),
            ("8785h", ConfigUnits.maxDuration),
            ("99999999999s", ConfigUnits.maxDuration),
            ("99999999999999999999s", ConfigUnits.maxDuration),
            ("99999999999999999999", ConfigUnits.maxDuration),
            ("1m99999999999999999999h", ConfigUnits.maxDuration),
        ] as [(String, Duration)]
    )
    func cappedDurations(text: String, expected: Duration) {
        #expect(ConfigUnits.parseDurationCapped(text) == expected)
    }

    @Test(
        "capped durations still refuse what is not a duration",
        arguments: ["", "soon", "-1s", "1d", "99999999999999999999d", "1s "]
    )
    func cappedNotDurations(text: String) {
        #expect(ConfigUnits.parseDurationCapped(text) == nil)
    }

    @Test(
        "sizes parse with binary and decimal units",
        arguments: [
            ("33554432", 33_554_432),
            ("32MiB", 32 << 20),
            ("512KiB", 512 << 10),
            ("512kib", 512 << 10),
            ("1GiB", 1 << 30),
            ("16K", 16 << 10),
            ("2M", 2 << 20),
            ("1KB", 1000),
            ("3MB", 3_000_000),
            ("1GB", 1_000_000_000),
            ("100B", 100),
            ("4 MiB", 4 << 20),
            ("0", 0),
        ] as [(String, Int)]
    )
    func sizes(text: String, expected: Int) {
        #expect(ConfigUnits.parseByteSize(text) == expected)
    }

    @Test(
        "bad sizes are refused",
        arguments: ["", "MiB", "1.5MiB", "-1", "12XB", "1 2", "99999999999999999999", "9999999999999GiB"]
    )
    func badSizes(text: String) {
        #expect(ConfigUnits.parseByteSize(text) == nil)
    }

    @Test(
        "listen addresses split into host and port",
        arguments: [
            ("127.0.0.1:8080", "127.0.0.1", 8080),
            ("[::1]:8080", "::1", 8080),
            ("[fe80::1%25eth0]:1", "", -1),
            ("0.0.0.0:0", "0.0.0.0", 0),
            ("localhost:65535", "localhost", 65535),
            ("gateway.example.com:443", "gateway.example.com", 443),
        ] as [(String, String, Int)]
    )
    func listenAddresses(text: String, host: String, port: Int) {
        let parsed = try? ListenAddress(parsing: text)
        if port < 0 {
            #expect(parsed == nil)
        } else {
            #expect(parsed == ListenAddress(host: host, port: port))
            #expect(parsed?.description == text)
        }
    }

    @Test(
        "loopback is 127.0.0.0/8, ::1 and localhost",
        arguments: [
            ("127.0.0.1", true), ("127.255.0.9", true), ("::1", true), ("localhost", true), ("LOCALHOST", true),
            ("::ffff:127.0.0.1", true), ("0.0.0.0", false), ("::", false), ("10.0.0.1", false), ("128.0.0.1", false),
            ("::2", false), ("example.com", false), ("localhost.example.com", false),
        ] as [(String, Bool)]
    )
    func loopback(host: String, expected: Bool) {
        #expect(ListenAddress(host: host, port: 1).isLoopback == expected)
    }

    @Test("with no tokens, a non-loopback listen address is refused unless auth is none")
    func listenPolicy() throws {
        var config = GatewayConfiguration.defaults
        config.listen = try ListenAddress(parsing: "0.0.0.0:8080")
        let error = #expect(throws: ConfigError.self) { try config.validateListenPolicy() }
        #expect(error?.path == "listen")
        #expect(error?.description.hasPrefix("<embedded default>: listen: refusing to listen on 0.0.0.0:8080") == true)
        #expect(error?.message.contains("auth: none") == true)

        config.listen = try ListenAddress(parsing: "[::1]:8080")
        #expect(throws: Never.self) { try config.validateListenPolicy() }

        config.listen = try ListenAddress(parsing: "0.0.0.0:8080")
        config.auth = .none
        #expect(throws: Never.self) { try config.validateListenPolicy() }

        config.auth = .tokens
        config.tokens = [TokenConfiguration(name: "a", token: "t")]
        #expect(throws: Never.self) { try config.validateListenPolicy() }
    }

    @Test("a file that binds everywhere without tokens parses, and the policy check refuses it")
    func listenPolicyFromFile() throws {
        let config = try GatewayConfiguration.parse(yaml: "listen: 0.0.0.0:80\n", source: "c.yaml")
        let error = #expect(throws: ConfigError.self) { try config.validateListenPolicy() }
        #expect(error?.source == "c.yaml")
        let open = try GatewayConfiguration.parse(yaml: "listen: 0.0.0.0:80\nauth: none\n", source: "c.yaml")
        #expect(throws: Never.self) { try open.validateListenPolicy() }
        #expect(!open.authRequired)
    }

    @Test("load(path:) reads a real file")
    func loadFile() throws {
        let path = NSTemporaryDirectory() + "tg-config-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try "listen: 127.0.0.1:9999\ntokens: [{name: ci, token: abc}]\n".write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try GatewayConfiguration.load(path: path)
        #expect(config.listenPort == 9999)
        #expect(config.tokens == [TokenConfiguration(name: "ci", token: "abc")])
        #expect(config.source == path)
    }
}
