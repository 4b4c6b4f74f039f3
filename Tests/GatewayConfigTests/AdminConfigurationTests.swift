import GatewayConfig
import Testing

@Suite("admin: configuration")
struct AdminConfigurationTests {
    @Test("no admin: block, no admin listener; admin.listen alone takes the other keys' defaults")
    func defaults() throws {
        #expect(GatewayConfiguration.defaults.admin == nil)
        #expect(try GatewayConfiguration.parse(yaml: "{}", source: "a.yaml").admin == nil)
        let config = try GatewayConfiguration.parse(yaml: "admin: {listen: \"127.0.0.1:9901\"}\n", source: "a.yaml")
        #expect(config.admin == AdminConfiguration(listen: ListenAddress(host: "127.0.0.1", port: 9901)))
        #expect(config.admin?.metricsOnServingPort == true)
        #expect(config.admin?.maxConnections == 16)
        let all = try GatewayConfiguration.parse(
            yaml: "admin: {listen: \"[::1]:0\", metrics_on_serving_port: false, max_connections: 4}\n", source: "a.yaml"
        )
        #expect(
            all.admin
                == AdminConfiguration(
                    listen: ListenAddress(host: "::1", port: 0), metricsOnServingPort: false, maxConnections: 4))
    }

    @Test(
        "a missing or bad address, an unknown key, a cap out of range are refused with their path",
        arguments: [
            ("admin: {}\n", "admin.listen"),
            ("admin:\n", "admin.listen"),
            ("admin: {listen: nowhere}\n", "admin.listen"),
            ("admin: {listen: \"127.0.0.1:70000\"}\n", "admin.listen"),
            ("admin: {listen: \"127.0.0.1:9901\", port: 1}\n", "admin.port"),
            ("admin: {listen: \"127.0.0.1:9901\", max_connections: 1025}\n", "admin.max_connections"),
            ("admin: {listen: \"127.0.0.1:9901\", metrics_on_serving_port: no}\n", "admin.metrics_on_serving_port"),
            ("admin: 9901\n", "admin"),
        ]
    )
    func refused(yaml: String, path: String) {
        let error = #expect(throws: ConfigError.self) { try GatewayConfiguration.parse(yaml: yaml, source: "a.yaml") }
        #expect(error?.path == path, "\(String(describing: error))")
    }

    @Test(
        "the admin address may not be the serving one: the same port on the same host or a wildcard; port 0 never clashes",
        arguments: [
            ("127.0.0.1:8080", "127.0.0.1:8080", true),
            ("127.0.0.1:8080", "0.0.0.0:8080", true),
            ("[::]:8080", "127.0.0.1:8080", true),
            ("127.0.0.1:8080", "127.0.0.2:8080", false),
            ("127.0.0.1:8080", "127.0.0.1:8081", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ]
    )
    func sameBinding(admin: String, listen: String, clash: Bool) throws {
        var config = GatewayConfiguration.defaults
        config.listen = try ListenAddress(parsing: listen)
        config.applyAdminListen(try ListenAddress(parsing: admin))
        if clash {
            let error = #expect(throws: ConfigError.self) { try config.validateAdminListen() }
            #expect(error?.path == "admin.listen")
        } else {
            #expect(throws: Never.self) { try config.validateAdminListen() }
        }
    }
}
