import AbacusSurface
import FoundationEssentials
import NIOCore
import OperationStore
import Testing
import TriggerModel
import WireCodecs

@Suite("Abacus envelope, errors and PipelineVersion")
struct AbacusEnvelopeTests {
    @Test("success is {\"success\":true,\"result\":...}")
    func success() {
        let body = AbacusEnvelope.success(.object(["apiEndpoint": .string("http://127.0.0.1:1")]))
        #expect(String(buffer: body) == #"{"success":true,"result":{"apiEndpoint":"http://127.0.0.1:1"}}"#)
        #expect(String(buffer: AbacusEnvelope.success(.string("1.4.119"))) == #"{"success":true,"result":"1.4.119"}"#)
    }

    @Test("a failure carries error, errorType (the client's exception class) and requestId, JSON-escaped")
    func failure() throws {
        let error = AbacusError.dataNotFound(#"no pipeline "x\y""#)
        let body = AbacusEnvelope.failure(error, requestID: "r1")
        #expect(
            String(buffer: body)
                == #"{"success":false,"error":"no pipeline \"x\\y\"","errorType":"DataNotFoundError","requestId":"r1"}"#
        )
        let response = AbacusAPI.failure(
            AbacusError(.permissionDenied, "invalid API key", httpStatus: 401),
            requestID: "r2"
        )
        #expect(response.status == 401)
        #expect(response.headers.contains { $0.name == "www-authenticate" })
        let busy = AbacusAPI.failure(AbacusError(GatewayError(.overloaded, "busy")), requestID: "r3")
        #expect(busy.headers.contains { $0 == ("retry-after", "1") })
    }

    @Test(
        "gateway errors map to the client's exception classes, keeping the gateway's HTTP status",
        arguments: [
            (GatewayError.Code.invalidArgument, "InvalidParameterError", 400),
            (.unauthenticated, "PermissionDeniedError", 401),
            (.permissionDenied, "PermissionDeniedError", 403),
            (.notFound, "DataNotFoundError", 404),
            (.conflict, "ConflictError", 409),
            (.payloadTooLarge, "InvalidParameterError", 413),
            (.overloaded, "TooManyRequestsError", 503),
            (.unavailable, "NotReadyError", 503),
            (.backendFailed, "FailedDependencyError", 502),
            (.deadlineExceeded, "TimeoutError", 504),
            (.unimplemented, "InvalidRequest", 501),
            (.internalError, "InternalServerError", 500),
        ]
    )
    func mapping(code: GatewayError.Code, type: String, status: Int) {
        let error = AbacusError(GatewayError(code, "m"))
        #expect(error.type.rawValue == type)
        #expect(error.httpStatus == status)
        #expect(error.message == "m")
    }

    private func operation(
        _ state: OperationState, result: TriggerResult? = nil, error: GatewayError? = nil,
        inputs: [TriggerInput] = [TriggerInput(variables: ["ms": .number(5)])]
    ) -> Operation {
        let created = Date(storeMilliseconds: 1_700_000_000_123)
        return Operation(
            id: "op1",
            ref: PipelineRef(namespace: "demo", pipeline: "sleep"),
            state: state,
            request: TriggerRequest(
                ref: PipelineRef(namespace: "demo", pipeline: "sleep"),
                mode: .async,
                inputs: inputs
            ),
            result: result,
            error: error,
            createdAt: created,
            startedAt: state == .queued ? nil : Date(storeMilliseconds: 1_700_000_001_000),
            finishedAt: state.isFinished ? Date(storeMilliseconds: 1_700_000_002_500) : nil,
            attempts: state == .queued ? 0 : 1,
            notBefore: created,
            requestDigest: ""
        )
    }

    @Test("queued is PENDING: RFC 3339 times, no completion, the inputs as mappings, one step without outputs")
    func pending() throws {
        let version = AbacusPipelineVersion.render(operation(.queued))
        #expect(version["pipelineVersion"] == .string("op1"))
        #expect(version["pipelineId"] == .string("sleep"))
        #expect(version["pipelineName"] == .string("sleep"))
        #expect(version["status"] == .string("PENDING"))
        #expect(version["createdAt"] == .string("2023-11-14T22:13:20.123Z"))
        #expect(version["updatedAt"] == .string("2023-11-14T22:13:20.123Z"))
        #expect(version["completedAt"] == .null)
        #expect(version["error"] == .null)
        let mappings = String(buffer: JSONValueCodec.encode(version["pipelineVariableMappings"] ?? .null))
        #expect(mappings == #"[{"name":"ms","variableType":"INTEGER","value":5}]"#)
        guard case .list(let steps)? = version["stepVersions"], let step = steps.first?.objectValue else {
            Issue.record("no step: \(version)")
            return
        }
        #expect(steps.count == 1)
        #expect(step["pipelineVersion"] == .string("op1"))
        #expect(step["status"] == .string("PENDING"))
        #expect(step["outputVariableMappings"] == .null)
    }

    @Test("succeeded is COMPLETE with the outputs on the step; failed is FAILED with the pipeline's message")
    func finished() throws {
        let done = AbacusPipelineVersion.render(
            operation(.succeeded, result: TriggerResult(outputs: [["ms": .number(5)]]))
        )
        #expect(done["status"] == .string("COMPLETE"))
        #expect(done["completedAt"] == .string("2023-11-14T22:13:22.500Z"))
        #expect(done["updatedAt"] == .string("2023-11-14T22:13:22.500Z"))
        let step = done["stepVersions"].flatMap { value -> ValueObject? in
            if case .list(let steps) = value { return steps.first?.objectValue }
            return nil
        }
        let outputs = String(buffer: JSONValueCodec.encode(step?["outputVariableMappings"] ?? .null))
        #expect(outputs == #"[{"name":"ms","variableType":"INTEGER","value":5}]"#)

        let failed = AbacusPipelineVersion.render(operation(.failed, error: GatewayError(.application(9), "boom")))
        #expect(failed["status"] == .string("FAILED"))
        #expect(failed["error"] == .string("boom"))
        #expect(AbacusPipelineVersion.status(.running) == "RUNNING")
        #expect(AbacusPipelineVersion.status(.cancelled) == "CANCELLED")
    }

    @Test("an operation of several inputs (an Instill batch) has one step per item, each with its inputs and outputs")
    func batchSteps() throws {
        let done = operation(
            .succeeded, result: TriggerResult(outputs: [["n": .number(1)], ["n": .number(2)]]),
            inputs: [TriggerInput(variables: ["ms": .number(1)]), TriggerInput(variables: ["ms": .number(2)])])
        guard case .list(let steps)? = AbacusPipelineVersion.render(done)["stepVersions"] else {
            Issue.record("no steps")
            return
        }
        #expect(steps.count == 2)
        for (item, step) in steps.enumerated() {
            let step = try #require(step.objectValue)
            #expect(step["stepName"] == .string("sleep[\(item)]"))
            #expect(step["pipelineStepVersion"] == .string("op1.\(item)"))
            let outputs = String(buffer: JSONValueCodec.encode(step["outputVariableMappings"] ?? .null))
            #expect(outputs == #"[{"name":"n","variableType":"INTEGER","value":\#(item + 1)}]"#)
            let inputs = String(buffer: JSONValueCodec.encode(step["functionVariableMappings"] ?? .null))
            #expect(inputs == #"[{"name":"ms","variableType":"INTEGER","value":\#(item + 1)}]"#)
        }
        // One input: one step, named after the pipeline, whose id is the operation's.
        let single = AbacusPipelineVersion.steps(operation(.queued))
        #expect(single.count == 1)
        #expect(single.first?["pipelineStepVersion"] == .string("op1"))
        #expect(single.first?["stepName"] == .string("sleep"))
    }

    @Test("a pipelineStepVersion names an operation and an item: <id> the first, <id>.<i> item i")
    func stepReference() {
        #expect(AbacusPipelineVersion.stepReference("op1")! == ("op1", 0))
        #expect(AbacusPipelineVersion.stepReference("op1.2")! == ("op1", 2))
        for bad in ["op1.", "op1.x", "op1.-1", "op1.1234567890", "op1.\u{0663}"] {
            #expect(AbacusPipelineVersion.stepReference(bad) == nil, "\(bad)")
        }
    }

    @Test("a pipeline names its latest version, or null")
    func pipeline() {
        let empty = AbacusPipelineVersion.pipeline(id: "echo", latest: nil)
        #expect(empty["pipelineId"] == .string("echo"))
        #expect(empty["latestPipelineVersion"] == .null)
        let latest = AbacusPipelineVersion.pipeline(id: "sleep", latest: operation(.running))
        #expect(latest["latestPipelineVersion"]?.objectValue?["status"] == .string("RUNNING"))
    }
}
