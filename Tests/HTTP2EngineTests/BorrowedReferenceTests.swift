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
        reference.drop()
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
        reference.drop()
        #expect(reference.object == nil)
        let afterDrop = reference.beginCall()
        #expect(afterDrop == nil)  // no new call once dropped
        reference.endCall()
        #expect(object() != nil)  // the outer call still runs
        reference.endCall()
        #expect(object() == nil)
        #expect(reference.callDepth == 0)
    }

    @Test("a second drop inside the same call keeps the object the first retired")
    func secondDropKeepsRetired() {
        var reference = BorrowedReference<Callee>()
        let object = self.holding(&reference)
        let call = reference.beginCall()
        #expect(call != nil)
        reference.drop()
        reference.drop()
        #expect(object() != nil)
        reference.endCall()
        #expect(object() == nil)
    }

    @Test("an object set after a drop is held, and the calls reach it")
    func setAfterDrop() {
        var reference = BorrowedReference<Callee>()
        let first = self.holding(&reference)
        reference.drop()
        #expect(first() == nil)
        let second = self.holding(&reference)
        let call = reference.beginCall()
        #expect(call?.takeUnretainedValue() === second())
        reference.endCall()
        #expect(second() != nil)
    }
}
