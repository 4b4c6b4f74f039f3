import Routing
import TriggerDispatch
import TriggerModel

/// What Instill's `GetNamespacePipeline` / `GetNamespacePipelineRelease` / `ListNamespacePipelineReleases` answer
/// (gRPC and REST alike): a
/// pipeline the gateway routes, with its releases as routes name them and its input and output fields as
/// the runner describes them (the runner protocol's `Describe` call, which the Craft AI surface uses too).
///
/// NOT_FOUND when no route matches the ref, or when the runner says it has no such pipeline; a runner that
/// cannot describe pipelines (UNIMPLEMENTED) gives schemas that take any fields, as the Craft AI surface reads it.
enum InstillPipelineMetadata {
    static func resource(_ ref: PipelineRef, services: FrontendServices) async throws -> PipelineResource {
        let description = try await services.dispatcher.pipelineDescription(ref)
        let owner = services.namespaces.namespace(id: ref.namespace)?.name ?? "organizations/\(ref.namespace)"
        let pipelineName = "namespaces/\(ref.namespace)/pipelines/\(ref.pipeline)"
        func release(_ id: String) -> PipelineResource {
            let name = "\(pipelineName)/releases/\(id)"
            return PipelineResource(
                name: name, uid: ResourceUID.v5(name), id: id, ownerName: owner, inputSchema: ValueObject(),
                outputSchema: ValueObject())
        }
        var resource: PipelineResource
        if let id = ref.release {
            resource = release(id)
        } else {
            resource = PipelineResource(
                name: pipelineName, uid: ResourceUID.v5(pipelineName), id: ref.pipeline, ownerName: owner,
                releases: services.dispatcher.releases(of: ref).map(release), inputSchema: ValueObject(),
                outputSchema: ValueObject())
        }
        resource.inputSchema = PipelineDescription.jsonSchema(of: description.inputs)
        resource.outputSchema = PipelineDescription.jsonSchema(of: description.outputs)
        return resource
    }

    /// What `ListNamespacePipelineReleases` (`ListPipelineReleases`, and its REST binding) answers: the page
    /// `query` asks for of the releases the pipeline's ``resource(_:services:)`` lists (so the same NOT_FOUND
    /// for a pipeline the gateway does not serve), each with its name, uid and id as that list has them; a
    /// release's schemas are `GetNamespacePipelineRelease`'s.
    static func releases(_ query: PipelineReleaseQuery, services: FrontendServices) async throws
        -> PipelineReleasePage
    {
        query.page(of: try await resource(query.ref, services: services).releases)
    }
}
