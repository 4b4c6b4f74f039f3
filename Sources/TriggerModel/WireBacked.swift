import NIOCore
import Synchronization

/// A model part that travels as bytes already in the next hop's form (issue 11: a result's outputs as the
/// client's message, a batch as the runner's `RunRequest` field), with the model decoded from `source`
/// the first time something reads it, and never again: a class, so that copies of the value holding it share
/// one decode.
///
/// Not generic on purpose: a generic class's deinit is not specialised, and looked up the metadata of its
/// `Mutex<Decoded?>` on every release (~2.6 k instructions per object in the gRPC call's profile).
final class WireBacked: Sendable {
    /// What `decode` gives: the one model part this instance stands for; `undecoded` until something reads it.
    /// A case, not an optional: destroying a `Mutex<Model?>` went through the runtime's generic value witnesses
    /// (~70 instructions per instance, two per gRPC or REST call; issue 11, fiftieth session).
    enum Model: Sendable {
        case undecoded
        case outputs([ValueObject])
        case inputs([TriggerInput])
    }

    /// How `model` is made from `source`, by kind (each its own case: wrapping a decoder in a closure of
    /// another type would allocate a context per instance).
    enum Decoder: Sendable {
        case outputs(@Sendable (ByteBuffer) -> [ValueObject])
        case inputs(@Sendable (ByteBuffer) -> [TriggerInput])
    }

    /// The bytes to send as they are.
    let wire: ByteBuffer
    /// The bytes `decoder` reads (the message `wire` was made from, whose decoder is the reference).
    private let source: ByteBuffer
    private let decoder: Decoder
    private let decoded = Mutex<Model>(.undecoded)

    init(wire: ByteBuffer, source: ByteBuffer, decoder: Decoder) {
        self.wire = wire
        self.source = source
        self.decoder = decoder
    }

    var model: Model {
        decoded.withLock { decoded in
            if case .undecoded = decoded {
                decoded =
                    switch decoder {
                    case .outputs(let decode): .outputs(decode(source))
                    case .inputs(let decode): .inputs(decode(source))
                    }
            }
            return decoded
        }
    }

    /// The outputs of a result's wire form.
    var outputs: [ValueObject] {
        guard case .outputs(let outputs) = model else { preconditionFailure("a result's wire form decodes to outputs") }
        return outputs
    }

    /// The inputs of a batch's wire form.
    var inputs: [TriggerInput] {
        guard case .inputs(let inputs) = model else { preconditionFailure("a batch's wire form decodes to inputs") }
        return inputs
    }
}
