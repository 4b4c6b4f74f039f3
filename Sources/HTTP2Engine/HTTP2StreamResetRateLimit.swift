import NIOCore

/// How fast a client may reset its own streams before the server ends the connection: the HTTP/2
/// "rapid reset" attack (CVE-2023-44487) opens a stream and resets it at once, over and over, so the server
/// starts work for requests no one waits for while the concurrency limit never binds.
///
/// A token bucket, like libnghttp2's own `nghttp2_option_set_stream_reset_rate_limit` (nghttp2 ≥ 1.57, and
/// Debian's 1.52.0-1+deb12u3 backport; its defaults are burst 1000, 33 per second): ``burst`` tokens at the
/// start, ``refillPerSecond`` more each second up to ``burst``; every RST_STREAM from the client takes one.
/// The reset that takes the last token ends the connection with GOAWAY(ENHANCE_YOUR_CALM) (RFC 9113 §5.4.1
/// and §7: "the endpoint is detecting behavior that might be generating excessive load"), as Envoy and nghttpx
/// do. So with the defaults the 1000th reset of a burst is the one that is refused, one before libnghttp2's own
/// limit (the 1001st) would end the connection with INTERNAL_ERROR and no reason the gateway could log.
package struct HTTP2StreamResetRateLimit: Hashable, Sendable {
    /// Resets a client may send at once (the bucket's size and its initial content). 1 to ``maximum``.
    package var burst: Int
    /// Resets a client may send per second in the long run (tokens added per second, continuously). 0 to
    /// ``maximum``.
    package var refillPerSecond: Int

    /// The largest burst and refill: a billion resets, past any real connection's, and small enough that the
    /// bucket's nanotokens (``HTTP2TokenBucket``, burst × 10^9, plus a refill up to the burst) fit in an Int64.
    /// Larger values trapped on the first reset (review 14 F4: `--stream-reset-limit 10000000000/1`).
    package static let maximum = 1_000_000_000

    package init(burst: Int, refillPerSecond: Int) {
        precondition(
            (1...Self.maximum).contains(burst) && (0...Self.maximum).contains(refillPerSecond),
            "stream reset rate limit: burst 1 to 10^9, refill 0 to 10^9")
        self.burst = burst
        self.refillPerSecond = refillPerSecond
    }

    /// nghttp2's defaults: burst 1000, 33 per second.
    package static let defaults = HTTP2StreamResetRateLimit(burst: 1000, refillPerSecond: 33)

    /// The limit libnghttp2 itself enforces on every server session (set in `NGHTTP2Tables`): twice the
    /// defaults, only a backstop, so that the engine's own bucket (with the defaults or anything below this)
    /// always trips first and the connection ends with ENHANCE_YOUR_CALM. libnghttp2 refills whole seconds at
    /// a time, so with equal limits it could run a few tokens behind ours and trip first.
    static let nghttp2Backstop = HTTP2StreamResetRateLimit(burst: 2000, refillPerSecond: 66)

    /// libnghttp2's limit for a server session whose engine limit is `limit`: ``nghttp2Backstop``, or twice `limit`
    /// when that is higher (a runner behind the gateway raises its limit: each cancelled or expired call resets
    /// one stream), so the engine's limit still trips first and says why. The sessions of a higher limit get
    /// libnghttp2 options of their own (`NGHTTP2Session.init`); all others share the process-wide ones.
    static func nghttp2Backstop(for limit: HTTP2StreamResetRateLimit?) -> HTTP2StreamResetRateLimit {
        guard let limit else { return nghttp2Backstop }
        // At `maximum` itself the backstop equals the limit: a billion resets, where a few tokens of libnghttp2's
        // whole-second refill do not matter.
        func doubled(_ value: Int) -> Int { min(value * 2, maximum) }
        return HTTP2StreamResetRateLimit(
            burst: max(doubled(limit.burst), nghttp2Backstop.burst),
            refillPerSecond: max(doubled(limit.refillPerSecond), nghttp2Backstop.refillPerSecond))
    }
}

/// A token bucket on the connection's clock (the event loop's `now`), so tests on an `EmbeddedEventLoop`
/// step it with `advanceTime(by:)`. Tokens are counted in nanotokens (1 token = 10^9), so the refill of
/// `refillPerSecond` tokens per second is exact integer arithmetic for any elapsed nanoseconds.
struct HTTP2TokenBucket {
    static let scale: Int64 = 1_000_000_000
    let limit: HTTP2StreamResetRateLimit
    /// Available tokens × ``scale``.
    private(set) var nanotokens: Int64
    private var refilledAt: NIODeadline

    init(limit: HTTP2StreamResetRateLimit, now: NIODeadline) {
        self.limit = limit
        self.nanotokens = Int64(limit.burst) * Self.scale
        self.refilledAt = now
    }

    /// Takes one token at `now`. Returns false when this take empties the bucket (fewer than one token left
    /// afterwards): the caller's limit is reached.
    mutating func take(now: NIODeadline) -> Bool {
        let elapsed = max(0, (now - self.refilledAt).nanoseconds)
        self.refilledAt = max(now, self.refilledAt)
        let capacity = Int64(self.limit.burst) * Self.scale
        // refill × elapsed ns is nanotokens (tokens/s × ns = 10^-9 tokens); saturate instead of overflowing.
        let (added, overflow) = Int64(self.limit.refillPerSecond).multipliedReportingOverflow(by: elapsed)
        self.nanotokens = overflow ? capacity : min(capacity, self.nanotokens + min(added, capacity))
        self.nanotokens -= Self.scale
        return self.nanotokens >= Self.scale
    }

    /// Whole tokens left.
    var tokens: Int { Int(self.nanotokens / Self.scale) }
}
