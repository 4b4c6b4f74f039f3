import Testing

@testable import GatewayServer

/// `RESTRequestHead.first` and `all` skip the scan for a name of a length no field has (a bit per length, modulo
/// 64): the answers must be the scan's, for present names, absent names of a present length, lengths 64 apart, and
/// after the fields change.
@Suite("RESTRequestHead field lookup by name")
struct RESTRequestHeadFieldTests {
    static let long = String(repeating: "x", count: 70)  // 70 % 64 == 6, the length of "accept"

    @Test("present names are found, first and all, in order; absent ones are not, whatever their length")
    func lookups() {
        let head = RESTRequestHead(
            method: "POST", target: "/",
            headers: [
                ("host", "h"), ("accept", "a/b"), ("user-agent", "ua"), ("accept", "c/d"), (Self.long, "long"),
            ])
        #expect(head.first("host") == "h")
        #expect(head.first("accept") == "a/b")
        #expect(head.all("accept") == ["a/b", "c/d"])
        #expect(head.first(Self.long) == "long")
        #expect(head.first("user-agent") == "ua")
        // Same length as a present name (10, "user-agent"), and lengths no field has.
        #expect(head.first("request-id") == nil)
        #expect(head.first("authorization") == nil)
        #expect(head.all("content-encoding") == [])
        // 6 + 64: the bit of "accept", no such field.
        #expect(head.first(String(repeating: "y", count: 70)) == nil)
        #expect(head.first(String(repeating: "z", count: 134)) == nil)
    }

    @Test("a field added or removed after the head was made is seen")
    func changedFields() {
        var head = RESTRequestHead(method: "GET", target: "/", headers: [("host", "h")])
        #expect(head.first("traceparent") == nil)
        head.headers.append(("traceparent", "00-1-2-01"))
        #expect(head.first("traceparent") == "00-1-2-01")
        head.headers.removeAll { $0.name == "host" }
        #expect(head.first("host") == nil)
        #expect(head.first("traceparent") == "00-1-2-01")
    }
}
