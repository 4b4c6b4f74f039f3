package import TriggerModel
import NIOCore
import WireCodecs

/// Craft AI's cap on an execution's non-file inputs and outputs: "the size of all values should be less than
/// 0.06MB" for json, string, number, boolean and array inputs (the SDK's `run_pipeline` docstring); files are
/// exempt (they are bounded by the body cap instead).
///
/// The size of a set of values is the sum of their JSON encodings (what the SDK sends, and what a client gets
/// back), not counting the names; a value that is a file (a blob) counts zero. Inputs and outputs are each
/// checked against the cap: the inputs when the execution is created, the outputs when they are read. The
/// status read (`get_pipeline_execution`) answers anyway and leaves out the values of a set over the cap
/// (``excess(_:what:)``), so an execution made elsewhere (Abacus.AI, Instill) or by a runner's large answer can
/// still be looked at (review 23, L2).
package struct CraftIOCap: Sendable, Equatable {
    /// Bytes; inclusive (a total equal to it passes).
    package var limit: Int

    package init(limit: Int) {
        self.limit = limit
    }

    /// The bytes the non-file values of `object` count for.
    package static func nonFileBytes(_ object: ValueObject) -> Int {
        var total = 0
        var scratch = ByteBuffer()
        for entry in object {
            if case .blob = entry.value { continue }
            scratch.clear()
            JSONValueCodec.write(entry.value, into: &scratch)
            total += scratch.readableBytes
        }
        return total
    }

    /// - Throws: `GatewayError(.payloadTooLarge)` naming the size and the cap when `inputs` is over it.
    package func checkInputs(_ inputs: ValueObject) throws(GatewayError) {
        try check(inputs, what: "inputs")
    }

    /// - Throws: `GatewayError(.payloadTooLarge)` naming the size and the cap when `outputs` is over it.
    package func checkOutputs(_ outputs: ValueObject) throws(GatewayError) {
        try check(outputs, what: "outputs")
    }

    private func check(_ object: ValueObject, what: String) throws(GatewayError) {
        if let error = excess(object, what: what) { throw error }
    }

    /// The 413 of `object` when its non-file values are over the cap (nil when they are not): `what` names the set
    /// (`inputs`, `outputs`) in its message.
    package func excess(_ object: ValueObject, what: String) -> GatewayError? {
        let size = Self.nonFileBytes(object)
        guard size > limit else { return nil }
        return GatewayError(
            .payloadTooLarge,
            "the non-file \(what) are \(size) bytes, over the cap of \(limit) bytes (\(Self.megabytes(limit)) MB) "
                + "on an execution's non-file \(what); send large values as files"
        )
    }

    /// The 413 of one value read on its own (`…/outputs/{name}`, review 59, F11: the whole set's cap made a small
    /// output unreadable beside a large one) when its JSON is over the cap; nil when it is not, and for a file.
    /// `what` names the set (`output`).
    package func excess(of value: Value, named name: String, what: String) -> GatewayError? {
        let size = Self.nonFileBytes(ValueObject([(name, value)]))
        guard size > limit else { return nil }
        return GatewayError(
            .payloadTooLarge,
            "the \(what) \"\(name)\" is \(size) bytes, over the cap of \(limit) bytes (\(Self.megabytes(limit)) MB) "
                + "on an execution's non-file \(what)s; send large values as files"
        )
    }

    /// `60000` → `0.06`: the cap in decimal megabytes, as Craft AI states it.
    static func megabytes(_ bytes: Int) -> String {
        var text = String(Double(bytes) / 1_000_000)
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }
}
