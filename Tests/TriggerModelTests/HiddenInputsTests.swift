import Testing
import TriggerModel

/// Security review, M1: inputs a surface filled from the gateway's own configuration are kept on the request
/// (the runner needs them, an async run is re-run from the store) and named in a label that every read honours.
@Suite("Hidden inputs")
struct HiddenInputsTests {
    @Test("the names survive the label whatever they hold (a newline, a percent sign, an escape's own text)")
    func namesRoundTrip() {
        var request = TriggerRequest(ref: PipelineRef(namespace: "n", pipeline: "p"), inputs: [])
        #expect(request.hiddenInputNames.isEmpty)
        let names: Set<String> = ["path", "a\nb", "%0A", "50%", "%25", ""]
        request.hiddenInputNames = names
        #expect(request.hiddenInputNames == names)
        request.hiddenInputNames = [""]
        #expect(request.hiddenInputNames == [""])
        request.hiddenInputNames = []
        #expect(request.labels[TriggerRequest.hiddenInputsLabel] == nil)
    }

    @Test("a read shows every item without the hidden inputs, and the request keeps them for its runner")
    func shownInputsLeaveThemOut() {
        var request = TriggerRequest(
            ref: PipelineRef(namespace: "n", pipeline: "p"),
            inputs: [
                TriggerInput(variables: ["prompt": .string("hi"), "key": .string("secret-from-env")]),
                TriggerInput(variables: ["key": .string("again")]),
            ])
        #expect(request.shownInputs == request.inputs.map(\.variables))
        request.hiddenInputNames = ["key"]
        #expect(request.shownInputs == [["prompt": .string("hi")], [:]])
        #expect(request.inputs[0].variables["key"] == .string("secret-from-env"))
    }
}
