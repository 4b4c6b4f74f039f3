import GatewayConfig
import Testing

/// `pools[].tls`, the endpoints' schemes, and the listener's `client_principals` as the loader reads them.
@Suite("pools[].tls and tls.client_principals parse")
struct BackendTLSConfigurationTests {
    @Test("https:// and grpcs:// turn TLS on (default port 443); tls: true and a mapping do too")
    func schemesAndKeys() throws {
        let config = try GatewayConfiguration.parse(
            yaml: """
                pools:
                  - {name: web, transport: http, endpoints: ["https://runner.internal/api", "https://10.0.0.2:8443"]}
                  - {name: rpc, transport: grpc, endpoints: ["grpcs://r1:9443", "grpcs://r2:9443"]}
                  - {name: on, transport: grpc, endpoints: ["r3:9000"], tls: true}
                  - name: full
                    transport: grpc
                    endpoints: ["10.0.0.3:9000"]
                    tls: {ca_file: ca.pem, server_name: runner.internal, cert_file: c.pem, key_file: k.pem}
                  - {name: plain, transport: grpc, endpoints: ["grpc://r4:9000", "r5:9000"], tls: false}
                routes: [{namespace: "*", pipeline: "*", pool: web}]
                """, source: "t.yaml")
        let pools = Dictionary(uniqueKeysWithValues: config.pools.map { ($0.name, $0) })
        #expect(
            pools["web"]?.endpoints.first
                == BackendEndpoint(host: "runner.internal", port: 443, basePath: "/api", scheme: .https))
        #expect(pools["web"]?.tls == BackendTLSConfiguration())
        #expect(pools["rpc"]?.tls == BackendTLSConfiguration())
        #expect(pools["on"]?.tls == BackendTLSConfiguration())
        #expect(
            pools["full"]?.tls
                == BackendTLSConfiguration(
                    caFile: "ca.pem", serverName: "runner.internal", certFile: "c.pem", keyFile: "k.pem"))
        #expect(pools["plain"]?.tls == nil)
        #expect(pools["plain"]?.endpoints.map(\.port) == [9000, 9000])
    }

    @Test("client_principals maps RFC 4514 subjects to principals")
    func clientPrincipals() throws {
        let config = try GatewayConfiguration.parse(
            yaml: """
                tls:
                  cert_file: s.pem
                  key_file: s.key
                  client_ca_file: ca.pem
                  client_principals: {"CN=alice,O=Example": alice, "CN=build-bot": ci}
                """, source: "t.yaml")
        #expect(config.tls?.clientPrincipals == ["CN=alice,O=Example": "alice", "CN=build-bot": "ci"])
    }
}
