import Testing
import TriggerModel

/// ``PipelineRunQuery``: Instill's page-number paging and the refusals of what the runs list does not do.
@Suite("pipeline run query: page sizes, page numbers, and refusals of filter and other orders")
struct PipelineRunQueryTests {
    static let ref = PipelineRef(namespace: "demo", pipeline: "echo")

    static func query(page: Int = 0, pageSize: Int = 0, filter: String = "", orderBy: String = "") throws(GatewayError)
        -> PipelineRunQuery
    {
        try PipelineRunQuery(ref: ref, page: page, pageSize: pageSize, filter: filter, orderBy: orderBy)
    }

    @Test(
        "page_size: 0 is 10, 1 and 100 as asked, 101 is 100",
        arguments: [(0, 10), (1, 1), (100, 100), (101, 100), (Int(Int32.max), 100)])
    func pageSize(asked: Int, applied: Int) throws {
        #expect(try Self.query(pageSize: asked).pageSize == applied)
    }

    @Test("the offset is page × page size, without overflow at the int32 edge")
    func offset() throws {
        #expect(try Self.query(page: 3, pageSize: 7).offset == 21)
        #expect(try Self.query(page: Int(Int32.max), pageSize: 1000).offset == Int(Int32.max) * 100)
    }

    @Test("a negative page or page size, or a missing id, is INVALID_ARGUMENT naming it")
    func negatives() {
        #expect(throws: GatewayError(.invalidArgument, "invalid page -1: expected a number ≥ 0")) {
            try Self.query(page: -1)
        }
        #expect(throws: GatewayError(.invalidArgument, "invalid page_size -1: expected a number ≥ 0")) {
            try Self.query(pageSize: -1)
        }
        #expect(throws: GatewayError(.invalidArgument, "pipeline_id is required")) {
            try PipelineRunQuery(
                ref: PipelineRef(namespace: "demo", pipeline: ""), page: 0, pageSize: 0, filter: "", orderBy: "")
        }
        #expect(throws: GatewayError(.invalidArgument, "namespace_id is required")) {
            try PipelineRunQuery(
                ref: PipelineRef(namespace: "", pipeline: "echo"), page: 0, pageSize: 0, filter: "", orderBy: "")
        }
    }

    @Test(
        "order_by: the newest-first order in any accepted spelling",
        arguments: ["", "create_time desc", "createTime desc", "start_time desc", "  startTime   desc "])
    func accepted(orderBy: String) throws {
        _ = try Self.query(orderBy: orderBy)
    }

    @Test(
        "order_by: anything else, ascending included, is INVALID_ARGUMENT naming the expression",
        arguments: ["create_time asc", "create_time", "complete_time desc", "status"])
    func refusedOrder(orderBy: String) {
        let error = #expect(throws: GatewayError.self) { try Self.query(orderBy: orderBy) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("order_by \"\(orderBy)\" is not supported") == true)
    }

    @Test("a filter expression is INVALID_ARGUMENT naming it, never ignored; a blank one is no filter")
    func refusedFilter() throws {
        let error = #expect(throws: GatewayError.self) { try Self.query(filter: "status=\"RUN_STATUS_FAILED\"") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("filter \"status=\"RUN_STATUS_FAILED\"\" is not supported") == true)
        _ = try Self.query(filter: "  ")
    }
}
