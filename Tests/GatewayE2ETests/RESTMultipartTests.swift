import Foundation
import GatewayTestSupport
import NIOCore
import Testing

@Suite("REST multipart/form-data triggers")
struct RESTMultipartTests {
    @Test("fields are JSON-decoded with a plain-string fallback; arrays by index; file parts are binaries")
    func fieldsArraysFiles() async throws {
        try await withTestGateway { gateway in
            var form = MultipartBody()
            form.field("variables[0].prompt", "hello there")  // not JSON: stays a string
            form.field("variables[0].count", "3")  // JSON number
            form.field("variables[0].opts", #"{"x":[1,2]}"#)
            form.field("variables[0].tags[1]", "b")
            form.field("variables[0].tags[0]", "a")
            form.field("variables[1].prompt", "second")
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: [("content-type", form.contentType)], body: form.finished()
            )
            #expect(response.status == 200, "\(response.bodyString)")
            let outs = try outputs(response.body)
            #expect(outs.count == 2)
            #expect(outs[0]["prompt"] as? String == "hello there")
            #expect(outs[0]["count"] as? Int == 3)
            #expect((outs[0]["opts"] as? [String: Any])?["x"] as? [Int] == [1, 2])
            #expect(outs[0]["tags"] as? [String] == ["a", "b"])
            #expect(outs[1]["prompt"] as? String == "second")
            await client.close()
        }
    }

    @Test("inputs[i].key is accepted like variables[i].key; a file part reaches blob-info byte-exact")
    func filePartIntact() async throws {
        try await withTestGateway { gateway in
            // The file holds CRLF + "--" + all but the last character of the boundary: a near-miss the
            // delimiter search must step over (RFC 2046 forbids the full delimiter inside a part).
            var form = MultipartBody()
            var bytes = randomBytes(300_000)
            let nearMiss = Array("\r\n--\(form.boundary.dropLast())Z".utf8)
            bytes.replaceSubrange(1000..<1000 + nearMiss.count, with: nearMiss)
            form.file("inputs[0].doc", filename: "doc.bin", contentType: "application/pdf", bytes: bytes)
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/blob-info/trigger",
                headers: [("content-type", form.contentType)], body: form.finished()
            )
            #expect(response.status == 200, "\(response.bodyString)")
            let info = try outputs(response.body).first?["doc"] as? [String: Any]
            #expect(info?["size"] as? Int == bytes.count)
            #expect(info?["sha256"] as? String == (try sha256Hex(bytes)))
            #expect(info?["content_type"] as? String == "application/pdf")
            await client.close()
        }
    }

    @Test("multipart without a boundary is 400")
    func noBoundary() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let response = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: [("content-type", "multipart/form-data")], body: ByteBuffer(string: "x")
            )
            #expect(response.status == 400)
            #expect((try json(response.body)["message"] as? String)?.contains("boundary") == true)
            await client.close()
        }
    }
}
