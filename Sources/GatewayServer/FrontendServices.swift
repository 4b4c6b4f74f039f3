package import TriggerDispatch
package import Logging
package import NIOCore
package import Routing
package import WireCodecs

/// What every frontend connection needs from the rest of the gateway, built once and shared.
package struct FrontendServices: Sendable {
    package var dispatcher: TriggerDispatcher
    package var authenticator: TokenAuthenticator
    package var limits: CodecLimits
    /// Request line + headers, in bytes, over which a request is refused with 431.
    package var maxHeaderBytes: Int
    /// How long a sync trigger may take end to end, unless the client asks for less.
    package var requestTimeout: TimeAmount
    /// How long a connection may sit with nothing to do before it is closed.
    package var idleTimeout: TimeAmount
    package var logger: Logger

    package init(
        dispatcher: TriggerDispatcher,
        authenticator: TokenAuthenticator,
        limits: CodecLimits,
        maxHeaderBytes: Int,
        requestTimeout: TimeAmount,
        idleTimeout: TimeAmount,
        logger: Logger
    ) {
        self.dispatcher = dispatcher
        self.authenticator = authenticator
        self.limits = limits
        self.maxHeaderBytes = maxHeaderBytes
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.logger = logger
    }
}
