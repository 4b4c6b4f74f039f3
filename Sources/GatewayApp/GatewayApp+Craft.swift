import Backends
import CraftSurface
import FoundationEssentials
import GatewayConfig
import Logging
import TriggerDispatch

extension GatewayApp {
    /// The Craft AI surface of a configuration generation. Its access-token key is read again on every
    /// reload, so a rotated `craft.jwt_secret_file` takes effect with SIGHUP. Nil, logged as an error, when the
    /// key cannot be had: the surface's routes then answer 404 and the rest of the gateway serves on.
    static func makeCraftSurface(
        _ config: GatewayConfiguration,
        dispatcher: TriggerDispatcher,
        logger: Logger
    ) -> CraftSurface? {
        let key: [UInt8]
        do {
            if config.craft.jwtSecretFile == nil {
                try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
            }
            key = try CraftSigningKey.load(secretFile: config.craft.jwtSecretFile, dataDir: config.dataDir)
        } catch {
            logger.error("the Craft AI surface is off: no access-token key", metadata: ["error": "\(error)"])
            return nil
        }
        return CraftSurface(
            configuration: config.craft,
            key: key,
            authRequired: config.authRequired,
            tokens: config.tokens,
            describe: { ref in try await dispatcher.pipelineDescription(ref) }
        )
    }
}
