package import TriggerModel

/// A backend runner that echoes any pipeline's inputs: for tests that must route arbitrary names (such as
/// the Instill SDK's `ns1/pipe1`) to something that answers.
package struct EchoAnyRunner: TriggerRunner {
    package init() {}

    package func run(_ request: TriggerRequest) async throws -> TriggerResult {
        TriggerResult(outputs: request.inputs.map(\.variables))
    }

    package func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
        let result = TriggerResult(outputs: request.inputs.map(\.variables))
        return AsyncThrowingStream { continuation in
            continuation.yield(.end(result))
            continuation.finish()
        }
    }
}
