import DemoRunner
import HTTP2Engine
import Testing

@Suite("demo-runner --stream-reset-limit BURST/PER_SECOND")
struct StreamResetLimitOptionTests {
    @Test(
        "valid at the edges (BURST 1 and 10^9, PER_SECOND 0 and 10^9) and between",
        arguments: [
            ("1/0", 1, 0), ("1000/33", 1000, 33), ("100000/10000", 100_000, 10_000),
            ("1000000000/1000000000", 1_000_000_000, 1_000_000_000),
        ])
    func valid(text: String, burst: Int, perSecond: Int) throws {
        let limit = try #require(DemoGRPCServer.streamResetRateLimit(parsing: text))
        #expect(limit.burst == burst)
        #expect(limit.refillPerSecond == perSecond)
    }

    @Test(
        "refused just past the edges and when malformed",
        arguments: [
            "0/0", "1/-1", "-1/5", "1000000001/1", "1/1000000001", "10000000000/1", "99999999999999999999/1", "1000",
            "1000/", "/33", "1/2/3", "a/b", "1000 /33", "",
        ])
    func refused(text: String) {
        #expect(DemoGRPCServer.streamResetRateLimit(parsing: text) == nil)
    }
}
