/// The Abacus.AI surface (`abacus:` in the config file): `POST /api/v0/runPipeline` and its companions, as the
/// published `abacusai` client calls them (API.md §4b).
///
/// An Abacus `pipelineId` names a pipeline of one namespace of the routing table: `runPipeline` with
/// `pipelineId: p` triggers `<namespace>/p`, which the routes then send to a pool like any other trigger.
package struct AbacusConfiguration: Sendable, Equatable {
    /// The namespace whose pipelines the surface serves. Default `demo`: with the embedded default, every
    /// demo pipeline is an Abacus pipeline whose `pipelineId` is its name.
    package var namespace: String

    package init(namespace: String = "demo") {
        self.namespace = namespace
    }

    /// Namespace `demo`.
    package static var defaults: AbacusConfiguration { AbacusConfiguration() }
}
