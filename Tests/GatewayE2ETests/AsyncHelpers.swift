import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// REST helpers for the async-mode tests: trigger, read, wait for operations through a real client.
struct AsyncClient {
    let client: TestHTTPClient

    static func connect(port: Int) async throws -> AsyncClient {
        AsyncClient(client: try await TestHTTPClient.connect(port: port))
    }

    /// POSTs `trigger-async` (or another `verb`) and returns the response and its decoded JSON.
    func trigger(
        _ pipeline: String,
        _ variables: [String: Any],
        release: String? = nil,
        verb: String = "trigger-async",
        headers: [(String, String)] = []
    ) async throws -> (status: Int, json: [String: Any]) {
        let path =
            release.map { "/v1beta/namespaces/demo/pipelines/\(pipeline)/releases/\($0)/\(verb)" }
            ?? "/v1beta/namespaces/demo/pipelines/\(pipeline)/\(verb)"
        let response = try await client.request(
            "POST", path, headers: jsonHeaders + headers, body: try jsonBody(["data": [["variable": variables]]])
        )
        return (response.status, try json(response.body))
    }

    func get(_ path: String) async throws -> (status: Int, json: [String: Any]) {
        let response = try await client.request("GET", path)
        return (response.status, try json(response.body))
    }

    func post(_ path: String) async throws -> (status: Int, json: [String: Any]) {
        let response = try await client.request("POST", path)
        return (response.status, try json(response.body))
    }

    /// GET with `?wait=` until the operation is done or `timeout` passes; returns the last operation.
    func waitDone(_ name: String, timeout: Duration = .seconds(30)) async throws -> [String: Any] {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while true {
            let (status, body) = try await get("/v1beta/\(name)?wait=5s")
            try #require(status == 200, "\(body)")
            let operation = try #require(body["operation"] as? [String: Any])
            if operation["done"] as? Bool == true || clock.now >= end { return operation }
        }
    }
}

extension Dictionary where Key == String, Value == Any {
    var operationName: String? { (self["operation"] as? [String: Any])?["name"] as? String }
    var metadataState: String? { (self["metadata"] as? [String: Any])?["state"] as? String }
    var firstOutput: [String: Any]? { ((self["response"] as? [String: Any])?["outputs"] as? [[String: Any]])?.first }
}
