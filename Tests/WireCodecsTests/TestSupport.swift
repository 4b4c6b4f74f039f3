import NIOCore
import Testing
import TriggerModel
import WireCodecs

extension ByteBuffer {
    /// The readable bytes as a string (tests only: bodies here are small).
    var text: String { String(buffer: self) }
}

func buffer(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

/// Runs `body` and returns the `GatewayError` it threw; records an issue when it threw nothing or something else.
func gatewayError(
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> GatewayError? {
    do {
        try body()
        Issue.record("expected a GatewayError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as GatewayError {
        return error
    } catch {
        Issue.record("expected a GatewayError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func encodeJSON(_ value: Value) -> String {
    var out = ByteBuffer()
    JSONValueCodec.write(value, into: &out)
    return out.text
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
func pseudoRandomBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    var out = [UInt8]()
    out.reserveCapacity(count)
    for _ in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        out.append(UInt8(truncatingIfNeeded: state))
    }
    return out
}
