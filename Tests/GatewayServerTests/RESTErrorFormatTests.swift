import Foundation
@testable import GatewayServer
import NIOCore
import Testing
import TriggerModel

/// Which error body a REST path gets (`RESTErrorFormat`): each surface's client reads only its own shape.
@Suite("REST error formats by path")
struct RESTErrorFormatTests {
    @Test(
        "a path's surface by its prefix; a query or a near miss does not change it",
        arguments: [
            ("/api/v0/runPipeline", RESTErrorFormat.abacus), ("/api/v0/", .abacus), ("/api/v0/x?y=/api/v1/", .abacus),
            ("/api/v1/pipelines/p/run", .craft), ("/endpoints/e", .craft), ("/endpoints/v1/e/executions/1", .craft),
            ("/api/v0", .instill), ("/api/v01/x", .instill), ("/endpoints", .instill),
            ("/v1beta/namespaces/demo/pipelines/p/trigger", .instill), ("/v1beta/x?q=/api/v0/", .instill),
            ("", .instill), ("*", .instill),
        ])
    func formatOfPath(path: String, format: RESTErrorFormat) {
        #expect(RESTErrorFormat(path: path) == format)
    }

    @Test("the same error in each format: its status and headers, the body each client reads")
    func bodies() throws {
        let error = GatewayError(.tooManyRequests, "slow down")
        func object(_ response: RESTResponse) throws -> [String: Any] {
            try #require(
                try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
        }
        for format in [RESTErrorFormat.instill, .abacus, .craft] {
            let response = format.response(error, requestID: "r1")
            #expect(response.status == 429)
            #expect(response.headers.contains { $0 == ("retry-after", "1") }, "\(format)")
            #expect(response.headers.contains { $0 == ("request-id", "r1") }, "\(format)")
            let body = try object(response)
            switch format {
            case .instill:
                #expect(body["code"] as? Int == 8 && body["message"] as? String == "slow down", "\(body)")
            case .abacus:
                #expect(body["success"] as? Bool == false && body["errorType"] as? String == "TooManyRequestsError")
                #expect(body["error"] as? String == "slow down" && body["requestId"] as? String == "r1", "\(body)")
            case .craft:
                #expect(body["name"] as? String == "RESOURCE_EXHAUSTED" && body["request_id"] as? String == "r1")
                #expect(body["message"] as? String == "slow down", "\(body)")
            }
        }
    }
}
