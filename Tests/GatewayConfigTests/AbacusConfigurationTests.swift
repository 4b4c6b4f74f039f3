import GatewayConfig
import Testing

@Suite("abacus: configuration")
struct AbacusConfigurationTests {
    @Test("the default maps namespace demo; abacus.namespace names another")
    func namespace() throws {
        #expect(GatewayConfiguration.defaults.abacus.namespace == "demo")
        let config = try GatewayConfiguration.parse(yaml: "abacus:\n  namespace: prod\n", source: "a.yaml")
        #expect(config.abacus == AbacusConfiguration(namespace: "prod"))
        #expect(try GatewayConfiguration.parse(yaml: "abacus:\n", source: "a.yaml").abacus == .defaults)
    }

    @Test(
        "a namespace that is not one exact name, or an unknown key, is refused with its path",
        arguments: [
            ("abacus:\n  namespace: \"*\"\n", "abacus.namespace"),
            ("abacus:\n  namespace: a/b\n", "abacus.namespace"),
            ("abacus:\n  namespace: \"\"\n", "abacus.namespace"),
            ("abacus:\n  namespaces: demo\n", "abacus.namespaces"),
            ("abacus: demo\n", "abacus"),
        ]
    )
    func refused(yaml: String, path: String) {
        let error = #expect(throws: ConfigError.self) { try GatewayConfiguration.parse(yaml: yaml, source: "a.yaml") }
        #expect(error?.path == path, "\(String(describing: error))")
    }

    @Test("scripts/example-config.yaml passes check-config's validation, abacus section included")
    func exampleConfig() throws {
        let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let config = try GatewayConfiguration.load(path: "/\(path)/scripts/example-config.yaml")
        #expect(config.abacus.namespace == "demo")
    }
}
