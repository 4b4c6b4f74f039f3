import Dispatch
import GatewayServer
import NIOCore
import NIOEmbedded
import Synchronization

/// Serves one input as one client connection, through the gateway's own connection pipeline
/// (`GatewayServer.configureConnection`: the protocol sniffer, then the HTTP/1.1 frontend or the HTTP/2
/// frontend connection, as the listener installs them) with ``FuzzServices``, and checks what the gateway
/// answered.
///
/// The channel is an `NIOAsyncTestingChannel`: thread-safe, because the frontends hand some work to tasks
/// (the in-process runner, the Abacus surface, health watches) that come back to the loop from other threads,
/// and with a manual clock, so every timeout can be run out without waiting for it. Phases:
/// 1. the input arrives in uneven chunks (``chunkSizes``), the loop running after each;
/// 2. settle: the loop runs until every complete request is answered or the connection is closed; work off
///    the loop gets at most ``settleLimit`` of real time (the routed pipelines answer at once, so only a lost
///    answer takes that long);
/// 3. the client stays silent: health watches end (as when the gateway drains), odd-length inputs also get
///    the listener's drain notice (`ChannelShouldQuiesceEvent`), and the loop's clock advances in steps until
///    the connection closes — a timeout or the drain must close it within
///    ``FuzzServices/longestQuietLife``. Every timer of the gateway's runs on the loop's clock (the idle
///    timeout's `ReadIdleHandler` and HTTP/2 frontend timer, the slow-client timeouts, and request deadlines through
///    `FrontendServices.clock`), so the harness only advances the clock.
///
/// What must hold, besides never trapping: see ``HTTP1Transcript`` and ``HTTP2Transcript``.
enum FuzzConnection {
    /// Read sizes cycled through while feeding the input: the first two split the 24-byte preface (the
    /// sniffer matches it incrementally), the rest cut requests and frames at varied offsets.
    static let chunkSizes = [1, 23, 9, 17, 4096, 3, 65_536]
    /// Real time the settle phase waits for work off the loop before calling a request unanswered, under the fuzzer
    /// (below its `-timeout=10`, scripts/fuzz.sh, so a lost answer is reported as one, not as a slow input).
    static let settleLimit = Duration.seconds(5)
    /// The same for the unit tests' replay (`FuzzConnectionTests`): the in-process runner answers at once, but on
    /// Swift's cooperative pool, two threads on a 2-core machine, which the suites running in parallel can keep
    /// busy for seconds (5 s once called an Abacus `runPipeline` unanswered under load, twenty-first session).
    static let replaySettleLimit = Duration.seconds(30)
    /// The clock step of the quiet phase: finer than every timeout (2 s and up, ``FuzzServices``), coarse
    /// enough that an input costs a handful of steps.
    static let quietStep = TimeAmount.seconds(1)

    /// Runs ``serve(_:)`` to completion from synchronous code (libFuzzer's callback); a broken invariant is a
    /// `preconditionFailure` naming it, which libFuzzer reports as a crash with the input.
    static func run(_ input: [UInt8]) {
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        Task {
            let violation = await serve(input).violation
            outcome.violation.withLock { $0 = violation }
            done.signal()
        }
        done.wait()
        if let violation = outcome.violation.withLock({ $0 }) { preconditionFailure("fuzz invariant: \(violation)") }
    }

    private final class Outcome: Sendable {
        let violation = Mutex<String?>(nil)
    }

    /// What serving one input gave: the gateway's bytes, and the first invariant broken (nil: all held).
    struct Served {
        var output: [UInt8]
        var violation: String?
    }

    /// Serves `input` as one connection.
    static func serve(_ input: [UInt8], settleLimit: Duration = settleLimit) async -> Served {
        var transcript = Transcript(input: input)
        let violation = await serve(input, settleLimit: settleLimit, transcript: &transcript)
        return Served(output: transcript.output, violation: violation)
    }

    private static func serve(_ input: [UInt8], settleLimit: Duration, transcript: inout Transcript) async -> String? {
        let loop = NIOAsyncTestingEventLoop()
        let services = FuzzServices.make(clock: { loop.now })
        let channel = NIOAsyncTestingChannel(loop: loop)
        do {
            try await loop.executeInContext {
                try channel.pipeline.syncOperations.addHandler(ClosedSocket())
                try GatewayServer.configureConnection(channel, services: services)
            }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        } catch {
            preconditionFailure("the gateway's connection pipeline could not be set up: \(error)")
        }

        var offset = 0
        var chunk = 0
        while offset < input.count, channel.isActive {
            let size = min(chunkSizes[chunk % chunkSizes.count], input.count - offset)
            let buffer = channel.allocator.buffer(bytes: input[offset..<(offset + size)])
            // An inbound error is the pipeline rejecting the input: allowed; the connection must still end.
            do { try await channel.writeInbound(buffer) } catch { break }
            offset += size
            chunk += 1
            await loop.run()
            await transcript.collect(from: channel)
        }

        let clock = ContinuousClock()
        let settleStart = clock.now
        while true {
            await loop.run()
            await transcript.collect(from: channel)
            if !channel.isActive || transcript.allAnswered() { break }
            if clock.now - settleStart > settleLimit {
                return "a complete request got no answer and the connection stayed open"
            }
            try? await Task.sleep(for: .microseconds(100))
        }
        if let violation = transcript.violation(closed: !channel.isActive) { return violation }

        services.value.health.draining()
        if input.count % 2 == 1 {
            try? await loop.executeInContext {
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
        var quiet = TimeAmount.zero
        while channel.isActive {
            guard quiet <= FuzzServices.longestQuietLife else {
                return "the connection outlived every timeout (\(quiet.nanoseconds / 1_000_000) ms quiet)"
            }
            await loop.advanceTime(by: quietStep)
            quiet = quiet + quietStep
            // Work off the loop (a watch ending after the drain, a late answer) gets a moment to come back in
            // the first steps; after that there is none left, and yielding is enough.
            if quiet <= quietStep * 2 {
                try? await Task.sleep(for: .microseconds(50))
            } else {
                await Task.yield()
            }
            await loop.run()
        }
        await transcript.collect(from: channel)
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
        return transcript.violation(closed: true)
    }
}

/// The client's bytes and the gateway's answer so far, judged by the protocol the sniffer will pick.
struct Transcript {
    enum Kind {
        case http1(HTTP1Transcript)
        case http2(HTTP2Transcript)
        /// A prefix of the HTTP/2 preface (or nothing): the sniffer waits, then its timeout closes.
        case undecided
    }

    var kind: Kind
    var output: [UInt8] = []

    init(input: [UInt8]) {
        let preface = ProtocolSniffer.preface
        if input.count >= preface.count, input.prefix(preface.count).elementsEqual(preface) {
            kind = .http2(HTTP2Transcript(client: input))
        } else if input.elementsEqual(preface.prefix(input.count)) {
            kind = .undecided
        } else {
            kind = .http1(HTTP1Transcript(client: input))
        }
    }

    mutating func collect(from channel: NIOAsyncTestingChannel) async {
        while let bytes = try? await channel.readOutbound(as: ByteBuffer.self) {
            output.append(contentsOf: bytes.readableBytesView)
        }
    }

    /// Every request the client completed has an answer (HTTP/1.1: a whole response; HTTP/2: response
    /// headers or a reset), or the connection has given up on it (GOAWAY past it).
    func allAnswered() -> Bool {
        switch kind {
        case .http1(let h1): h1.allAnswered(output)
        case .http2(let h2): h2.allAnswered(output)
        case .undecided: true
        }
    }

    /// The first invariant the answer so far breaks; nil when all hold.
    func violation(closed: Bool) -> String? {
        switch kind {
        case .http1(let h1): h1.violation(output, closed: closed)
        case .http2(let h2): h2.violation(output, closed: closed)
        case .undecided: output.isEmpty ? nil : "the gateway wrote before the protocol was known"
        }
    }
}

/// A socket's rule the test channel does not keep: nothing written after the close reaches the peer (the test
/// channel records such writes as if sent). First in the pipeline, in front of everything the gateway installs.
final class ClosedSocket: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard context.channel.isActive else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }
}
