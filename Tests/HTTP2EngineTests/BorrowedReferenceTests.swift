import HTTP2Engine
import Testing

/// `BorrowedReference`'s rule (issue 11): an object dropped while one of its calls runs lives until the outermost
/// call has returned, and no longer. The session's delegate and transport are both held this way;
/// `DelegateLifetimeTests` shows the rule over a real close, these show each step of it, the transport's case
/// (a handler removed inside one of its own writes, which no NIO path reaches today) included.
@Suite("HTTP/2 borrowed reference")
struct BorrowedReferenceTests {
    final class Callee {}

    /// `reference` set to a fresh object that only it holds; `object` sees whether that object is alive.
    private func holding(_ reference: inout BorrowedReference<Callee>) -> () -> Callee? {
        var callee: Callee? = Callee()
        weak let object = callee
        reference.set(callee!)
        callee = nil
        return { object }
    }

    @Test("dropped outside a call, the object is released at once")
    func dropOutsideCall() {
        var reference = BorrowedReference<Callee>()
        let object = self.holding(&reference)
        #expect(object() != nil)
        _ = reference.drop()
        #expect(object() == nil)
        let call = reference.beginCall()
        #expect(call == nil)
    }

    @Test("dropped inside nested calls, the object lives until the outermost returns")
    func dropInsideNestedCalls() throws {
        var reference = BorrowedReference<Callee>()
        let object = self.holding(&reference)
        let began = reference.beginCall()
        let outer = try #require(began)
        let inner = reference.beginCall()
        #expect(inner?.toOpaque() == outer.toOpaque())
        _ = reference.drop()
        #expect(reference.object == nil)
        let afterDrop = reference.beginCall()
        #expect(afterDrop == nil)  // no new call once dropped
        _ = reference.endCall()
        #expect(object() != nil)  // the outer call still runs
        _ = reference.endCall()
        #expect(object() == nil)
        #expect(reference.callDepth == 0)
    }

    @Test("a second drop inside the same call keeps the object the first retired")
    func secondDropKeepsRetired() {
        var reference = BorrowedReference<Callee>()
        let object = self.holding(&reference)
        let call = reference.beginCall()
        #expect(call != nil)
        _ = reference.drop()
        _ = reference.drop()
        #expect(object() != nil)
        _ = reference.endCall()
        #expect(object() == nil)
    }

    @Test("an object set after a drop is held, and the calls reach it")
    func setAfterDrop() {
        var reference = BorrowedReference<Callee>()
        let first = self.holding(&reference)
        _ = reference.drop()
        #expect(first() == nil)
        let second = self.holding(&reference)
        let call = reference.beginCall()
        #expect(call?.takeUnretainedValue() === second())
        _ = reference.endCall()
        #expect(second() != nil)
    }

    /// Holds a reference in a class, as the session does, so that a deinit can reach it.
    final class Owner {
        var reference = BorrowedReference<Reentrant>()
        /// What each deinit found when it called into the reference: (a call began, depth).
        var seen: [(began: Bool, depth: Int)] = []
    }

    /// An object whose deinit uses the reference that held it (review of session 38: a release inside the
    /// reference's own mutating access would overlap this one, an exclusivity trap).
    final class Reentrant {
        unowned let owner: Owner

        init(owner: Owner) { self.owner = owner }

        deinit {
            let call = self.owner.reference.beginCall()
            if call != nil { _ = self.owner.reference.endCall() }
            self.owner.seen.append((call != nil, self.owner.reference.callDepth))
        }
    }

    @Test("a deinit that uses the same reference runs after the drop's access, and finds it cleared")
    func reentrantDeinitOnDrop() {
        let owner = Owner()
        owner.reference.set(Reentrant(owner: owner))
        let released = owner.reference.drop()
        #expect(released != nil)
        #expect(owner.seen.isEmpty)  // not released inside drop()
        _ = consume released
        #expect(owner.seen.count == 1)
        #expect(owner.seen.first?.began == false)
    }

    @Test("a deinit that uses the same reference runs after the outermost endCall's access")
    func reentrantDeinitOnEndCall() {
        let owner = Owner()
        owner.reference.set(Reentrant(owner: owner))
        let call = owner.reference.beginCall()
        #expect(call != nil)
        let retired = owner.reference.drop()
        #expect(retired == nil)  // retired, not handed back: the call still runs
        let released = owner.reference.endCall()
        #expect(owner.seen.isEmpty)
        #expect(released != nil)
        _ = consume released
        #expect(owner.seen.count == 1)
        #expect(owner.seen.first?.began == false)
        #expect(owner.seen.first?.depth == 0)
    }

    @Test("setting an object while one is held is refused")
    func setWhileHeldTraps() async {
        await #expect(processExitsWith: .failure) {
            var reference = BorrowedReference<Callee>(Callee())
            reference.set(Callee())
        }
    }

    @Test("setting an object inside a call is refused")
    func setInsideCallTraps() async {
        await #expect(processExitsWith: .failure) {
            var reference = BorrowedReference<Callee>()
            reference.set(Callee())
            _ = reference.beginCall()
            _ = reference.drop()
            reference.set(Callee())
        }
    }
}
