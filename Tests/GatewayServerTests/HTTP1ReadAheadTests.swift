import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import GatewayServer

/// The HTTP/1.1 frontend keeps reading while it answers a request (issue 11: NIO's `HTTPServerPipelineHandler`
/// otherwise takes the socket out of the read set and puts it back, two `epoll_ctl` per request), unless the
/// client pipelines: from the next request's head on, reads are held back until the answer has gone out.
@Suite("HTTP/1.1 reads while a request is answered")
struct HTTP1ReadAheadTests {
    /// Counts the `read()` calls that reach the channel (it sits first in the pipeline, next to the head).
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Any
        let reads = Atomic<Int>(0)

        func read(context: ChannelHandlerContext) {
            reads.add(1, ordering: .sequentiallyConsistent)
            context.read()
        }
    }

    static let body = #"{"data":[{"variable":{"x":1}}]}"#
    static let request =
        "POST /v1beta/namespaces/demo/pipelines/wait/trigger HTTP/1.1\r\nhost: gw\r\n"
        + "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"

    @Test(
        "a trigger being answered keeps the connection reading; a pipelined request's head holds reads back",
        .timeLimit(.minutes(1)))
    func pipelineReads() async throws {
        let runner = FrontendDeadlineTests.Hanging()
        let (loop, channel) = try await FrontendDeadlineTests.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(2), runner: runner)
        let counter = ReadCounter()
        try await channel.pipeline.addHandler(counter, position: .first).get()

        try await channel.writeInbound(ByteBuffer(string: Self.request))
        // What a socket channel's auto-read asks after each read.
        channel.read()
        await loop.run()
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
        let afterFirst = counter.reads.load(ordering: .sequentiallyConsistent)
        #expect(afterFirst == 1, "the read after the request's last byte did not reach the channel")

        // The client pipelines a second request while the first is answered: no read passes from then on.
        try await channel.writeInbound(ByteBuffer(string: Self.request))
        channel.read()
        await loop.run()
        #expect(counter.reads.load(ordering: .sequentiallyConsistent) == afterFirst)
        #expect(try await FrontendDeadlineTests.written(channel).isEmpty, "answered before the deadline")

        // The first answer written (at its deadline), the pipelined request is taken and the held read goes on.
        await loop.advanceTime(by: .hours(1))
        #expect(try await FrontendDeadlineTests.written(channel).hasPrefix("HTTP/1.1 504 "))
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 2 })
        #expect(counter.reads.load(ordering: .sequentiallyConsistent) == afterFirst + 1)

        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }

    @Test("a quiescing connection does not read past the request it is answering", .timeLimit(.minutes(1)))
    func quiescingHoldsReads() async throws {
        let runner = FrontendDeadlineTests.Hanging()
        let (loop, channel) = try await FrontendDeadlineTests.connection(
            requestTimeout: .hours(1), poolTimeout: .hours(2), runner: runner)
        let counter = ReadCounter()
        try await channel.pipeline.addHandler(counter, position: .first).get()
        // The shutdown's quiesce arrives while the request's body does (quiescing an idle connection closes it).
        let split = Self.request.utf8.count - 5
        try await channel.writeInbound(ByteBuffer(string: String(Self.request.utf8.prefix(split))!))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        await loop.run()
        try await channel.writeInbound(ByteBuffer(string: String(Self.request.utf8.dropFirst(split))!))
        channel.read()
        await loop.run()
        #expect(await eventually(within: .seconds(20)) { runner.started.load(ordering: .sequentiallyConsistent) == 1 })
        #expect(counter.reads.load(ordering: .sequentiallyConsistent) == 0)

        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.shutdownGracefully()
    }
}
