/// A reference the session calls into without retaining it, and the rule that keeps that safe: an object dropped
/// while one of its calls runs is kept (retired) until the outermost call has returned.
///
/// Why: a call through a class's `var` retains the callee and releases it afterwards, two atomic operations per
/// call (~5 ns each on this machine; issue 11 counted ~8 delegate calls and ~9 transport writes per proxied gRPC
/// call). The object is held in a `let` field of `Object` (``DelegateSlot``, ``TransportSlot``) and reached
/// through `Unmanaged._withUnsafeGuaranteedRef`, which does not retain.
///
/// The protocol, for the owner's `withX(_:)` method:
/// ```swift
/// guard let object = self.reference.beginCall() else { return }
/// object._withUnsafeGuaranteedRef { body($0) }
/// _ = self.reference.endCall()
/// ```
/// `beginCall()` and `endCall()` are separate mutating accesses so that no access to the owner's stored property
/// is open while the call runs: calls nest (a transport write whose writability change drains the session again),
/// and a `mutating` method spanning the call would overlap with the nested one's (an exclusivity violation).
///
/// For the same reason nothing is released inside a mutating access: ``drop()`` and ``endCall()`` hand back the
/// object they let go, and the caller releases it after the access has ended. A deinit of that object (or of what
/// it holds) may then use the same reference, which finds it already cleared.
package struct BorrowedReference<Object: AnyObject> {
    /// The object held; nil when there is none (never set, or dropped).
    package private(set) var object: Object?
    /// ``object``, not retained: valid while ``object`` or ``retired`` holds it.
    private var borrowed: Unmanaged<Object>?
    /// An object dropped while a call ran: released when the outermost call returns.
    private var retired: Object?
    /// How many calls are on the stack (``beginCall()`` without its ``endCall()``).
    package private(set) var callDepth = 0

    package init(_ object: Object? = nil) {
        self.object = object
        self.borrowed = object.map { Unmanaged.passUnretained($0) }
    }

    /// Holds `object` in place of none, outside any call. Replacing a held object, or setting one inside a call,
    /// is not a use the owners have: a drop after it could overwrite ``retired`` while its call still runs.
    package mutating func set(_ object: Object) {
        precondition(self.object == nil && self.callDepth == 0, "a borrowed reference is set while held or in a call")
        self.object = object
        self.borrowed = Unmanaged.passUnretained(object)
    }

    /// Lets the object go: at once outside any call, else when the outermost call returns. A second drop inside the
    /// same call keeps the object the first one retired (there is nothing left to retire).
    ///
    /// - Returns: the object let go now (outside any call), for the caller to release after this access; nil when
    ///   none was held or when it was retired.
    package mutating func drop() -> Object? {
        // The borrowed pointer goes first: nothing can reach the object through it once it may be released.
        self.borrowed = nil
        let object = self.object
        self.object = nil
        if self.callDepth > 0 {
            if let object { self.retired = object }
            return nil
        }
        return object
    }

    /// Starts a call: the object, borrowed; nil when there is none (then no ``endCall()``).
    @inline(__always)
    package mutating func beginCall() -> Unmanaged<Object>? {
        guard let borrowed = self.borrowed else { return nil }
        self.callDepth &+= 1
        return borrowed
    }

    /// Ends a call ``beginCall()`` started.
    ///
    /// - Returns: the object dropped meanwhile, when this was the outermost call, for the caller to release after
    ///   this access; else nil.
    @inline(__always)
    package mutating func endCall() -> Object? {
        assert(self.callDepth > 0, "endCall() without its beginCall()")
        self.callDepth &-= 1
        guard self.callDepth == 0, self.retired != nil else { return nil }
        let retired = self.retired
        self.retired = nil
        return retired
    }
}

/// Holds a session's delegate in a constant field: see ``NGHTTP2Session/withDelegate(_:)``.
final class DelegateSlot {
    let delegate: any HTTP2SessionDelegate

    init(_ delegate: any HTTP2SessionDelegate) { self.delegate = delegate }
}

/// Holds a session's transport in a constant field: see ``NGHTTP2Session/withTransport(_:)``.
final class TransportSlot {
    let transport: any HTTP2SessionTransport

    init(_ transport: any HTTP2SessionTransport) { self.transport = transport }
}
