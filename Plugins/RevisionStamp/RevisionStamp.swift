import Foundation
import PackagePlugin

/// Stamps the VCS revision into the target it is applied to: the executable, which hands it to Observability's
/// `GatewayBuild.stamp(revision:)` at start-up (the `revision` label of `trigger_gateway_build_info`, as Prometheus'
/// own `prometheus_build_info` carries it; review 26 L8). Not a library target: every module importing it would be
/// recompiled after each commit.
///
/// A prebuild command, so it runs before every build: `git rev-parse HEAD` of the package directory, with `-dirty`
/// when tracked files differ from it, written as `StampedRevision.swift` (`let stampedRevision = "<rev>"`) into
/// the plugin's work directory, and rewritten only when the text changes, so an unchanged revision recompiles
/// nothing. Without git or outside a work tree (a source tarball, a checkout git does not trust) it stamps
/// `unknown`: the build never fails for it. Only `/bin/sh` and `git` run (a prebuild command cannot run a tool the
/// package builds).
@main
struct RevisionStamp: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "Generated")
        let script = """
            rev=$(git -C "$1" rev-parse HEAD 2>/dev/null) || rev=unknown
            if [ "$rev" != unknown ] && ! git -C "$1" diff --quiet HEAD -- 2>/dev/null; then rev="$rev-dirty"; fi
            text="let stampedRevision = \\"$rev\\""
            mkdir -p "$2"
            [ "$(cat "$2/StampedRevision.swift" 2>/dev/null)" = "$text" ] || printf '%s\\n' "$text" > "$2/StampedRevision.swift"
            """
        return [
            .prebuildCommand(
                displayName: "Stamping the VCS revision",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "revision-stamp", context.package.directoryURL.path, output.path],
                outputFilesDirectory: output)
        ]
    }
}
