import HTTP2Engine
import Testing

@Suite("HTTP2Headers")
struct HTTP2HeadersTests {
    @Test("names are lower-cased and pseudo-headers kept ahead of regular fields")
    func ordering() {
        var headers: HTTP2Headers = ["Content-Type": "application/grpc", ":method": "POST"]
        headers.add(name: "X-Dup", value: "1")
        headers.add(name: ":path", value: "/a")
        headers.add(name: "x-dup", value: "2")
        #expect(headers.fields.map(\.name) == [":method", ":path", "content-type", "x-dup", "x-dup"])
        #expect(headers.values(name: "X-DUP") == ["1", "2"])
        #expect(headers.first(name: "content-type") == "application/grpc")
    }

    @Test("add(lowercasedName:) keeps the same order as add(name:): pseudo-headers first, appended in order")
    func addLowercased() {
        var headers = HTTP2Headers(capacity: 4)
        headers.add(lowercasedName: ":method", value: "POST")
        headers.add(lowercasedName: "te", value: "trailers")
        headers.add(lowercasedName: ":path", value: "/a")
        headers.add(lowercasedName: "te", value: "x")
        var expected = HTTP2Headers()
        for (name, value) in [(":method", "POST"), ("te", "trailers"), (":path", "/a"), ("te", "x")] {
            expected.add(name: name, value: value)
        }
        #expect(headers == expected)
        #expect(headers.fields.map(\.name) == [":method", ":path", "te", "te"])
    }

    @Test("replaceOrAdd and remove keep the pseudo-header prefix consistent")
    func replaceAndRemove() {
        var headers: HTTP2Headers = [":status": "200", "grpc-status": "0"]
        headers.replaceOrAdd(name: ":status", value: "503")
        headers.add(name: ":x", value: "y")
        #expect(headers.fields.map(\.name) == [":status", ":x", "grpc-status"])
        headers.remove(name: ":status")
        headers.add(name: ":status", value: "204")
        #expect(headers.fields.map(\.name) == [":x", ":status", "grpc-status"])
        #expect(headers.first(name: ":status") == "204")
    }

    @Test("first(name:) finds a field by its lowercase name, by a mixed-case one, and misses cleanly")
    func firstIsCaseInsensitive() {
        let headers: HTTP2Headers = [":path": "/a", "Grpc-Timeout": "1S", "te": "trailers", "grpc-timeout": "2S"]
        #expect(headers.first(name: "grpc-timeout") == "1S")  // the first of two, exact lowercase query
        #expect(headers.first(name: "GRPC-Timeout") == "1S")  // folded only after the exact scan missed
        #expect(headers.first(name: ":PATH") == "/a")
        #expect(headers.first(name: "authorization") == nil)
        #expect(headers.first(name: "Authorization") == nil)
        #expect(HTTP2Headers().first(name: "te") == nil)
    }
}
