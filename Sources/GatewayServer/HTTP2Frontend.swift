import NIOCore
import TriggerModel

extension GatewayServer {
    /// Installs the HTTP/2 frontend (REST over h2c and gRPC) on a connection that sent the preface.
    static func configureHTTP2(_ channel: any Channel, services: FrontendServices) throws {
        throw GatewayError(.unimplemented, "HTTP/2 is not available on this gateway yet")
    }
}
