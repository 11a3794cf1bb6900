import Foundation
import HydraEngine
import HydraOutputs

/// The page served at GET / and its files (Sources/HydraServer/Resources/web: plain HTML, CSS and
/// JavaScript, linted by `make lint-web`), read once at start. Written for this project, no build
/// step, nothing from a CDN; every URL in the page is relative, so it works behind a path prefix.
struct WebAssets: Sendable {
    struct File: Sendable {
        let bytes: [UInt8]
        let contentType: String
    }

    /// By name under /static/ (and index.html, favicon.ico).
    let files: [String: File]
    /// Why there are no files, when the folder was not found.
    let missing: String?

    static let types = ["html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
                        "js": "text/javascript; charset=utf-8", "json": "application/json", "svg": "image/svg+xml",
                        "ico": "image/x-icon", "jpg": "image/jpeg", "png": "image/png"]

    /// The folder: $HYDRA_WEB_DIR, else the resource bundle `swift build` lays out beside the
    /// executable (the image copies it to the same place).
    static func folder() -> String? {
        if let d = ProcessInfo.processInfo.environment["HYDRA_WEB_DIR"], !d.isEmpty { return d }
        return ResourceBundle.file(in: "Hydra_HydraServer.resources", ["web/index.html"]).map { ($0 as NSString).deletingLastPathComponent }
    }

    static func load() -> WebAssets {
        guard let dir = folder() else {
            return WebAssets(files: [:], missing: "the web page's files (Hydra_HydraServer.resources beside the binary, "
                + "or $HYDRA_WEB_DIR) are not installed")
        }
        var files: [String: File] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let type = types[(name as NSString).pathExtension],
                  let data = FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(name)) else { continue }
            files[name] = File(bytes: [UInt8](data), contentType: type)
        }
        // The page colours depth with the same map as the colour depth PNG.
        let table = DepthColourMap.table.map { "[\($0[0]),\($0[1]),\($0[2])]" }.joined(separator: ",")
        files["depth-colours.json"] = File(bytes: Array("{\"table\":[\(table)]}".utf8), contentType: types["json"]!)
        guard files["index.html"] != nil else { return WebAssets(files: [:], missing: "\(dir) holds no index.html") }
        return WebAssets(files: files, missing: nil)
    }
}
