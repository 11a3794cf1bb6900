import Foundation

/// The resource bundles `swift build` lays out beside the executable (`Hydra_<Target>.resources`),
/// which the container image copies to the same place beside the binary.
public enum ResourceBundle {
    /// The first of `paths` (relative to the bundle) that exists, looked up beside the executable
    /// and one folder up; nil when the bundle is not installed.
    public static func file(in bundle: String, _ paths: [String]) -> String? {
        let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [exe, exe.deletingLastPathComponent()] {
            let root = dir.appendingPathComponent(bundle)
            for p in paths.map({ root.appendingPathComponent($0).path }) where FileManager.default.fileExists(atPath: p) { return p }
        }
        return nil
    }
}
