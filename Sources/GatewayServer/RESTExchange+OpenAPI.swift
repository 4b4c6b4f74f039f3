import NIOCore

extension RESTResponse {
    /// The document's bytes, made once: every answer shares the same storage.
    private static let openAPIBody = ByteBuffer(string: openAPIDocumentJSON)

    /// `GET /openapi.json`: the OpenAPI 3.1 document of the REST surface (`openapi/openapi.json`, compiled in by
    /// `scripts/regen-openapi.sh`). Served without a token, like the health endpoints: it describes routes,
    /// not data.
    static func openAPIDocument(requestID: String) -> RESTResponse {
        json(status: 200, body: openAPIBody, requestID: requestID)
    }
}
