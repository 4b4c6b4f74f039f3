import Foundation
import GatewayTestSupport
import Testing
import TriggerModel

/// Instill's requester (issue 17, item 3): the unmodified SDK with `requester_id` looks the namespace up
/// (`CheckNamespace`, then `GetUser` or `GetOrganization`) and sends `instill-requester-uid` on every later call;
/// the gateway answers from the namespaces its config knows, refuses a requester the principal may not act
/// for, and passes the uid to the backend over both transports.
@Suite("Instill requester: the SDK's requester_id, lookups and refusals")
struct InstillRequesterTests {
    /// Answers with the requester uid and principal the backend received.
    struct RequesterEchoRunner: TriggerRunner {
        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            var out = ValueObject()
            out["requester"] = .string(request.requesterUID ?? "none")
            out["principal"] = .string(request.principal ?? "none")
            return TriggerResult(outputs: [out])
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "not streamed here")) }
        }
    }

    static func yaml(httpPort: Int, grpcPort: Int) -> String {
        """
        auth: tokens
        tokens:
          - {name: alice, token: alice-token, requesters: [acme]}
          - {name: bob, token: bob-token}
        namespaces:
          - {id: acme, kind: organization}
          - {id: carol, kind: user}
        pools:
          - {name: echo-http, transport: http, endpoints: ["127.0.0.1:\(httpPort)"]}
          - {name: echo-grpc, transport: grpc, endpoints: ["127.0.0.1:\(grpcPort)"]}
        routes:
          - {namespace: acme, pipeline: via-http, pool: echo-http}
          - {namespace: acme, pipeline: via-grpc, pool: echo-grpc}
        """
    }

    static func withRequesterGateway(_ body: (TestGateway) async throws -> Void) async throws {
        try await withHTTPBackend(runner: RequesterEchoRunner()) { httpPort in
            try await withGRPCBackend(runner: RequesterEchoRunner()) { grpcPort in
                try await withTestGateway(yaml: yaml(httpPort: httpPort, grpcPort: grpcPort), body)
            }
        }
    }

    static func firstOutput(_ run: Peers.InstillSDKRun) -> [String: Any]? {
        let response = run.result?["response"] as? [String: Any]
        return (response?["outputs"] as? [[String: Any]])?.first
    }

    @Test("requester_id of an organization and of the principal itself: the uid reaches http and grpc backends")
    func sdkRequesterReachesBackends() async throws {
        try await Self.withRequesterGateway { gateway in
            for (requester, pipeline) in [("acme", "via-http"), ("acme", "via-grpc"), ("alice", "via-grpc")] {
                let run = try await Peers.instillSDK(
                    "trigger", port: gateway.port, ["acme", pipeline], token: "alice-token", requester: requester)
                #expect(run.status == 0, "\(run.output)")
                let expected = try #require(run.result?["expected_uid"] as? String, "\(run.output)")
                let output = try #require(Self.firstOutput(run), "\(run.output)")
                #expect(output["requester"] as? String == expected, "\(requester) via \(pipeline): \(output)")
                #expect(output["principal"] as? String == "alice")
                // What the SDK itself sends on later calls: the uid the lookup gave it.
                let metadata = run.result?["metadata"] as? [[String]]
                #expect(metadata == [["instill-requester-uid", expected]], "\(String(describing: metadata))")
            }
        }
    }

    /// instill-ai/protobufs `PipelineRun`: `requester_id` is "the namespace used to trigger the run", `runner_id`
    /// "the authenticated user" (review of the fifty-fourth session: both were the principal).
    @Test("list_pipeline_runs: requester_id is the namespace the run was triggered for, runner_id the principal")
    func runsNameTheRequester() async throws {
        try await Self.withRequesterGateway { gateway in
            for requester in ["acme", ""] {
                let started = try await Peers.instillSDK(
                    "trigger_async", port: gateway.port, ["acme", "via-http"], token: "alice-token",
                    requester: requester.isEmpty ? nil : requester)
                #expect(started.status == 0, "\(started.output)")
            }
            let listed = try await Peers.instillSDK(
                "list_pipeline_runs", port: gateway.port, ["acme", "via-http"], token: "alice-token")
            #expect(listed.status == 0, "\(listed.output)")
            let read = try #require(listed.result?["read"] as? [[String: Any]], "\(listed.output)")
            // Newest first: the run without a requester, then acme's.
            #expect(read.map { $0["requester"] as? String } == ["alice", "acme"], "\(read)")
            #expect(read.map { $0["runner"] as? String } == ["alice", "alice"], "\(read)")
        }
    }

    @Test("a requester the principal may not act for: the SDK's lookup is refused PERMISSION_DENIED; unknown ids")
    func sdkRequesterRefused() async throws {
        try await Self.withRequesterGateway { gateway in
            // bob may act only as himself: the calls after the first lookup carry acme's uid and are refused.
            let denied = try await Peers.instillSDK(
                "trigger", port: gateway.port, ["acme", "via-http"], token: "bob-token", requester: "acme")
            #expect(denied.status != 0)
            #expect(denied.output.contains("PERMISSION_DENIED"), "\(denied.output)")
            #expect(denied.output.contains("bob may not act for namespace"), "\(denied.output)")
            // An id nobody holds: CheckNamespace answers NAMESPACE_AVAILABLE and the SDK gives up on its own.
            let unknown = try await Peers.instillSDK(
                "trigger", port: gateway.port, ["acme", "via-http"], token: "alice-token", requester: "nobody")
            #expect(unknown.status != 0)
            #expect(unknown.output.contains("namespace ID not available"), "\(unknown.output)")
            // Without requester_id nothing is sent and nothing is checked.
            let plain = try await Peers.instillSDK(
                "trigger", port: gateway.port, ["acme", "via-grpc"], token: "bob-token")
            #expect(plain.status == 0, "\(plain.output)")
            #expect(Self.firstOutput(plain)?["requester"] as? String == "none")
        }
    }

    @Test("grpcio: CheckNamespace, GetUser and GetOrganization from the config; NOT_FOUND edges")
    func lookupsOverGRPCIO() async throws {
        try await Self.withRequesterGateway { gateway in
            func call(_ kind: String, _ id: String, token: String? = "alice-token") async throws -> [String: Any] {
                try await Peers.instillGenerations("mgmt", port: gateway.port, [kind, id], token: token)
            }
            #expect(try await call("check", "acme")["type"] as? String == "NAMESPACE_ORGANIZATION")
            #expect(try await call("check", "carol")["type"] as? String == "NAMESPACE_USER")
            #expect(try await call("check", "bob")["type"] as? String == "NAMESPACE_USER")
            #expect(try await call("check", "nobody")["type"] as? String == "NAMESPACE_AVAILABLE")

            let carol = try await call("user", "carol")
            #expect(carol["name"] as? String == "users/carol")
            #expect(carol["id"] as? String == "carol")
            let uid = try #require(carol["uid"] as? String)
            #expect(UUID(uuidString: uid) != nil && uid.dropFirst(14).first == "5", "a UUIDv5: \(uid)")
            #expect(try await call("user", "carol")["uid"] as? String == uid, "stable")
            #expect(try await call("user", "me")["name"] as? String == "users/alice", "me is the principal")
            let acme = try await call("organization", "acme")
            #expect(acme["name"] as? String == "organizations/acme")
            #expect(try await call("user", "acme")["code"] as? String == "NOT_FOUND", "an organization is no user")
            #expect(try await call("organization", "carol")["code"] as? String == "NOT_FOUND")
            #expect(try await call("organization", "nobody")["code"] as? String == "NOT_FOUND")
            #expect(try await call("check", "acme", token: nil)["code"] as? String == "UNAUTHENTICATED")
        }
    }

    @Test("grpcio: instill-requester-uid of another namespace, an unknown uid, or no UUID is refused")
    func requesterMetadataEdges() async throws {
        try await Self.withRequesterGateway { gateway in
            let acme = try await Peers.instillGenerations(
                "mgmt", port: gateway.port, ["organization", "acme"], token: "alice-token")
            let acmeUID = try #require(acme["uid"] as? String)
            func trigger(_ token: String, _ uid: String) async throws -> [String: Any] {
                try await Peers.instillGenerations(
                    "trigger", port: gateway.port, ["acme", "via-grpc"], token: token, requesterUID: uid)
            }
            let allowed = try await trigger("alice-token", acmeUID.uppercased())
            #expect((allowed["outputs"] as? [[String: Any]])?.first?["requester"] as? String == acmeUID, "\(allowed)")
            // Async: stored with the operation, sent by the dispatcher's backend call.
            let async = try await Peers.instillGenerations(
                "trigger_async", port: gateway.port, ["acme", "via-http"], token: "alice-token", requesterUID: acmeUID)
            #expect((async["outputs"] as? [[String: Any]])?.first?["requester"] as? String == acmeUID, "\(async)")
            let denied = try await trigger("bob-token", acmeUID)
            #expect(denied["code"] as? String == "PERMISSION_DENIED", "\(denied)")
            let unknown = try await trigger("alice-token", "2f1c1bde-7c5b-4c0e-9a55-000000000000")
            #expect(unknown["code"] as? String == "PERMISSION_DENIED", "\(unknown)")
            #expect((unknown["details"] as? String)?.contains("unknown requester") == true)
            let malformed = try await trigger("alice-token", "acme")
            #expect(malformed["code"] as? String == "INVALID_ARGUMENT", "\(malformed)")
        }
    }

    @Test("auth off: any well-formed requester uid passes through to the backend")
    func authOffPassesThrough() async throws {
        try await withGRPCBackend(runner: RequesterEchoRunner()) { port in
            let yaml = """
                pools:
                  - {name: echo-grpc, transport: grpc, endpoints: ["127.0.0.1:\(port)"]}
                routes:
                  - {namespace: acme, pipeline: "*", pool: echo-grpc}
                """
            try await withTestGateway(yaml: yaml) { gateway in
                let uid = "2f1c1bde-7c5b-4c0e-9a55-000000000001"
                let out = try await Peers.instillGenerations(
                    "trigger", port: gateway.port, ["acme", "p"], requesterUID: uid)
                #expect((out["outputs"] as? [[String: Any]])?.first?["requester"] as? String == uid, "\(out)")
            }
        }
    }
}
