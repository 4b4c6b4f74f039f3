import NIOCore
import NIOPosix
import Synchronization

/// A cleartext TCP relay on loopback that keeps a copy of every byte its clients send: put between the gateway
/// (or a transport) and a backend, it shows what the backend receives on the wire, byte for byte, per accepted
/// connection, while the backend still answers as usual.
package final class RecordingRelay: Sendable {
    package let port: Int
    private let channel: any Channel
    private let received = Mutex<[[UInt8]]>([])

    /// The bytes each accepted connection sent towards the backend, in accept order.
    package var connections: [[UInt8]] { received.withLock { $0 } }

    package init(backendPort: Int) async throws {
        let box = Mutex<RecordingRelay?>(nil)
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let relay = box.withLock({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    let index = relay.received.withLock { list -> Int in
                        list.append([])
                        return list.count - 1
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        Front(backendPort: backendPort) { bytes in
                            relay.received.withLock { $0[index] += bytes }
                        })
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        port = channel.localAddress!.port!
        box.withLock { $0 = self }
    }

    package func close() async {
        try? await channel.close()
    }

    /// One accepted connection: records and forwards what it reads; the backend's bytes come back through ``RelayBackHandler``.
    private final class Front: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        private let backendPort: Int
        private let record: @Sendable ([UInt8]) -> Void
        private let link = RelayBackendLink()

        init(backendPort: Int, record: @escaping @Sendable ([UInt8]) -> Void) {
            self.backendPort = backendPort
            self.record = record
        }

        func channelActive(context: ChannelHandlerContext) {
            link.connect(front: context.channel, port: backendPort)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            record(Array(buffer.readableBytesView))
            link.forward(buffer)
        }

        func channelInactive(context: ChannelHandlerContext) {
            link.close()
            context.fireChannelInactive()
        }
    }

}

/// A test relay's connection to its backend at 127.0.0.1 (``RecordingRelay``, ``TLSTerminator``): client bytes
/// read before it is up are held and written once it is; either side closing closes the other. Used on the
/// client channel's event loop only.
final class RelayBackendLink {
    private var backend: (any Channel)?
    private var pending: [ByteBuffer] = []

    /// Connects on `front`'s event loop; `front` is closed when the connect fails or the backend closes.
    func connect(front: any Channel, port: Int) {
        let loopBound = NIOLoopBound(self, eventLoop: front.eventLoop)
        ClientBootstrap(group: front.eventLoop)
            .channelInitializer { back in
                back.eventLoop.makeCompletedFuture {
                    try back.pipeline.syncOperations.addHandler(RelayBackHandler(front: front))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenComplete { result in
                let link = loopBound.value
                switch result {
                case .success(let back):
                    link.backend = back
                    for buffer in link.pending { back.write(buffer, promise: nil) }
                    link.pending = []
                    back.flush()
                    back.closeFuture.whenComplete { _ in front.close(promise: nil) }
                case .failure:
                    front.close(promise: nil)
                }
            }
    }

    /// Client bytes to the backend, or held until it is connected.
    func forward(_ buffer: ByteBuffer) {
        if let backend { backend.writeAndFlush(buffer, promise: nil) } else { pending.append(buffer) }
    }

    func close() { backend?.close(promise: nil) }
}

/// The backend side of a test relay (``RelayBackendLink``): bytes from the backend go back to the client's
/// channel, and either side closing closes the other.
final class RelayBackHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let front: any Channel

    init(front: any Channel) { self.front = front }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        front.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        front.close(promise: nil)
        context.fireChannelInactive()
    }
}
