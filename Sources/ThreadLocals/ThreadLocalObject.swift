#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One object per thread, made on the thread's first use and released when the thread exits: the per-event-loop
/// state of the hot path (the request metrics' instruments, the histogram shards, the access log's line buffer,
/// the id generator).
///
/// What NIO's `ThreadSpecificVariable` does, at a quarter of the cost: a `pthread_key_t` whose value is the object
/// itself (`Unmanaged`, one retain owned by the thread), lent to ``withValue(makingWith:_:)``'s body at +0. NIO's
/// keeps a box it casts dynamically (`swift_dynamicCastUnknownClassUnconditional`) and returns the value retained:
/// ~125 instructions per read, four to five reads per request (issue 11; bench/README.md, "Branch hotpath9").
///
/// Not `Sendable` in its values: each thread only ever sees its own object. Like NIO's, a value still set on a
/// live thread when this is deinitialized is not released (the key is deleted; POSIX runs no destructors then).
///
/// Keep instances `static`, one per kind of state, with objects that serve every instance of their owner (tagged
/// with the owner's id where they hold its state, as ``RequestMetrics``' cache): each is a `pthread_key_t`, and a
/// process has `PTHREAD_KEYS_MAX` (1024 in glibc), never more. One per instance of an owner ran out in the
/// end-to-end suites (a gateway per test, two keys each, not all freed at once), and creation then traps.
///
/// `public`, not `package`, with its `@inlinable` members: Swift 6.3.1 serialises no `@inlinable` body of a
/// `package` type, so callers in other modules called the unspecialised generic code (bench/README.md,
/// "Branch asynccost4", which found it for `GroupCommit`).
public final class ThreadLocalObject<Value: AnyObject>: @unchecked Sendable {
    private let key: pthread_key_t

    public init() {
        var key = pthread_key_t()
        // Runs on a thread's exit for a non-nil value: the thread's retain of its object.
        let code = pthread_key_create(&key) { value in
            let value: UnsafeMutableRawPointer? = value
            if let value { Unmanaged<AnyObject>.fromOpaque(value).release() }
        }
        precondition(code == 0, "pthread_key_create failed (\(code)): too many thread-local keys")
        self.key = key
    }

    deinit {
        pthread_key_delete(key)
    }

    /// Calls `body` with the calling thread's object, made by `make` (and kept) when the thread has none yet. The
    /// object is lent for the call: it stays the thread's until the thread exits.
    @inlinable
    public func withValue<Result>(makingWith make: () -> Value, _ body: (Value) throws -> Result) rethrows -> Result {
        if let stored = stored() {
            return try Unmanaged<Value>.fromOpaque(stored)._withUnsafeGuaranteedRef(body)
        }
        let made = make()
        store(Unmanaged.passRetained(made).toOpaque())
        return try body(made)
    }

    /// Whether the calling thread has its object already (for tests).
    package var hasValue: Bool { stored() != nil }

    /// The calling thread's value (retained once for the thread), nil before its first use.
    @usableFromInline func stored() -> UnsafeMutableRawPointer? { pthread_getspecific(key) }

    @usableFromInline func store(_ value: UnsafeMutableRawPointer) {
        let code = pthread_setspecific(key, value)
        precondition(code == 0, "pthread_setspecific failed (\(code))")
    }
}
