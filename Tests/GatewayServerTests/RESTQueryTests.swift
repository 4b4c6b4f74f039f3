import Testing

@testable import GatewayServer

@Suite("RESTQuery: a query string's parameters")
struct RESTQueryTests {
    @Test("a value's + is a space (form encoding); a credential's + is itself, its %2B too; a bad escape is refused")
    func credential() throws {
        let query = try RESTQuery(target: "/e?token=c+rol/K3y%2B0%3D&q=a+b&empty")
        #expect(query["q"] == "a b")
        #expect(query["token"] == "c rol/K3y+0=")
        #expect(query.credential("token") == "c+rol/K3y+0=")
        #expect(query.credential("empty") == "")
        #expect(query.credential("absent") == nil)
        // Refused where the query is read, before any parameter is asked for.
        #expect(throws: (any Error).self) { try RESTQuery(target: "/e?token=a%2") }
    }
}
