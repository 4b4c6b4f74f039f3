#!/usr/bin/env python3
"""Every target imports what it declares and declares what it imports (issue 19 item 4).

Reads the manifest with `swift package dump-package` and each target's sources, then reports:
  - declared but never imported: a dependency no source file of the target imports;
  - imported but not declared: a module a source file imports that the target does not depend on
    (reached only transitively, which breaks when the other target changes).
Modules of the toolchain (Foundation, Glibc, Testing, ...) need no declaration. Exit status 1 on any finding.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLCHAIN = {
    "Foundation", "FoundationEssentials", "FoundationNetworking", "Glibc", "Darwin", "Dispatch", "Testing",
    "XCTest", "Synchronization", "_Concurrency", "Swift", "Observation", "os", "Musl", "Android", "WinSDK",
}
IMPORT = re.compile(r"^\s*(?:@_\w+\s+)?(?:@\w+\s+)*(?:package |public |internal |private |fileprivate )?import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?([A-Za-z_][A-Za-z0-9_]*)", re.M)

# A product's module name when it differs from the product's.
PRODUCT_MODULES = {}

# Modules a target may import without declaring them, and why. Only a package's non-product target, which SwiftPM
# does not let a dependent declare, belongs here.
UNDECLARED_ALLOWED = {
    # sqlite-nio's C target (the SQLite it bundles): the store keeps prepared statements (SQLiteHandle.swift), which
    # the `SQLiteNIO` product cannot, and must use the same SQLite copy as SQLiteNIO (two copies in one process
    # break each other's file locks: sqlite.org/howtocorrupt.html 2.2.1). Declared through `SQLiteNIO`.
    ("SQLiteOperationStore", "VaporCSQLite"),
}


def header(text):
    """The file's leading lines up to its first declaration: where Swift imports live (so an `import` inside
    a string literal further down, such as an embedded Python script, is not read as one)."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if (not stripped or stripped.startswith(("//", "/*", "*", "#if", "#else", "#elseif", "#endif", "@_"))
                or IMPORT.match(line)):
            lines.append(line)
            continue
        break
    return "\n".join(lines)


def main():
    manifest = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, check=True,
                                         capture_output=True, text=True).stdout)
    failures = []
    for target in manifest["targets"]:
        if target["type"] in ("system", "binary", "plugin"):
            continue
        name = target["name"]
        path = target.get("path") or os.path.join("Tests" if target["type"] == "test" else "Sources", name)
        directory = os.path.join(ROOT, path)
        if not os.path.isdir(directory):
            continue
        declared = set()
        for dependency in target["dependencies"]:
            kind, value = next(iter(dependency.items()))
            module = value[0]
            declared.add(PRODUCT_MODULES.get(module, module))
        imported = set()
        has_swift = False
        for folder, _, files in os.walk(directory):
            for file in files:
                if file.endswith(".swift"):
                    has_swift = True
                    with open(os.path.join(folder, file), encoding="utf-8") as handle:
                        imported |= set(IMPORT.findall(header(handle.read())))
        if not has_swift:
            continue
        for module in sorted(declared - imported):
            failures.append(f"{name}: declares {module} but no source imports it")
        for module in sorted(imported - declared - TOOLCHAIN - {name}):
            if (name, module) in UNDECLARED_ALLOWED:
                continue
            failures.append(f"{name}: imports {module} without declaring it")
    for failure in failures:
        print(f"check-dependencies: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
