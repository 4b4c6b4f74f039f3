/// Names one pipeline a trigger is for: `namespace/pipeline`, optionally pinned to a release.
///
/// A ref without a release means "the pipeline's default (latest) version"; the release, when present,
/// travels to the backend unchanged.
package struct PipelineRef: Hashable, Sendable, CustomStringConvertible {
    package var namespace: String
    package var pipeline: String
    package var release: String?

    package init(namespace: String, pipeline: String, release: String? = nil) {
        self.namespace = namespace
        self.pipeline = pipeline
        self.release = release
    }

    /// `ns/pipeline` or `ns/pipeline@release`: the form used in logs, metrics and operation metadata.
    package var description: String {
        if let release { return "\(namespace)/\(pipeline)@\(release)" }
        return "\(namespace)/\(pipeline)"
    }
}
