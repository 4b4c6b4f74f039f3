/// Limits every protobuf decoder in this module enforces.
package enum ProtoLimits {
    /// How deeply objects and lists may nest in one value. The outermost object of a batch item (its
    /// variables, or an output) is depth 1, each nested object or list adds one: 64 levels are accepted,
    /// 65 rejected with `.invalidArgument`. Enforced on the wire before protobuf-c recurses (see
    /// `WireDepthGuard`), so hostile nesting cannot exhaust the stack.
    package static let maxNestingDepth = 64
}
