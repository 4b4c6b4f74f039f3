import Foundation
import GatewayTestSupport
import Testing

/// The unmodified instill-sdk 0.18.0 with its defaults (issue 17): `secure=True`, so TLS with ALPN `h2`, the test
/// CA given through `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, the target `localhost:<port>` (the certificate names
/// localhost). Every SDK path that triggers: trigger, trigger_release, trigger_async + get_operation,
/// trigger_with_stream.
@Suite("instill-sdk with its defaults (TLS) against a TLS gateway", .serialized)
struct InstillSDKTLSTests {
    @Test("trigger, trigger_release, trigger_async + get_operation and trigger_with_stream over TLS")
    func sdkDefaults() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: TLSListenerTests.yaml(pki)) { gateway in
            let run = try await Peers.instillSDK(
                "tls-defaults", port: gateway.port, token: "instill_sk_test", tlsCA: pki.caFile)
            #expect(run.status == 0, "\(run.output)")
            let out = try #require(run.result, "\(run.output)")
            let trigger = out["trigger"] as? [String: Any]
            #expect((trigger?["outputs"] as? [[String: Any]])?.first?["prompt"] as? String == "hello", "\(out)")
            let release = out["trigger_release"] as? [String: Any]
            #expect((release?["outputs"] as? [[String: Any]])?.first?["prompt"] as? String == "R", "\(out)")
            let started = (out["trigger_async"] as? [String: Any])?["operation"] as? [String: Any]
            #expect((started?["name"] as? String)?.hasPrefix("operations/") == true, "\(out)")
            let finished = (out["get_operation"] as? [String: Any])?["operation"] as? [String: Any]
            #expect(finished?["done"] as? Bool == true, "\(out)")
            let response = finished?["response"] as? [String: Any]
            #expect((response?["outputs"] as? [[String: Any]])?.first?["prompt"] as? String == "later", "\(out)")
            let stream = out["trigger_with_stream"] as? [[String: Any]] ?? []
            let streamed = stream.flatMap { ($0["outputs"] as? [[String: Any]]) ?? [] }
            #expect(streamed.contains { $0["prompt"] as? String == "s" }, "\(out)")
        }
    }
}
