import HydraEngine
import HydraImage
import HydraOutputs

/// The query of a predict request, validated into an `OutputRequest` and a deadline.
package struct PredictParameters {
    var request = OutputRequest()
    var timeoutMs: Int

    static let names: Set<String> = ["outputs", "depth_format", "depth_scale", "fx", "fy", "cx", "cy", "hfov", "stride", "min_depth",
                                     "max_depth", "drop_classes", "colour_by", "color_by", "ply_format", "overlay_format",
                                     "fast", "timeout_ms"]
    static let aliases = ["color_by": "colour_by"]

    /// Defaults, with a deadline.
    init(timeoutMs: Int) { self.timeoutMs = timeoutMs }

    /// Throws a 400 `Problem` naming the first bad parameter.
    package init(query: [(String, String)], model: Model, defaultTimeoutMs: Int) throws {
        timeoutMs = defaultTimeoutMs
        var seen: [String: String] = [:]
        for (key, value) in query {
            guard Self.names.contains(key) else {
                throw Problem(400, "unknown query parameter '\(key.prefix(40))'; known: \(Self.names.sorted().joined(separator: ", "))")
            }
            // An alias names the same parameter: colour_by and color_by may not both be given.
            let canonical = Self.aliases[key] ?? key
            if let earlier = seen.updateValue(key, forKey: canonical) {
                throw Problem(400, earlier == key ? "query parameter '\(key)' is given twice"
                                                  : "query parameters '\(earlier)' and '\(key)' name the same parameter; give one")
            }
            func number(_ lo: Double, _ hi: Double) throws -> Double {
                guard let d = Double(value), d.isFinite, d >= lo, d <= hi else {
                    throw Problem(400, "\(key) must be a number in \(lo)...\(hi), got '\(value.prefix(40))'")
                }
                return d
            }
            func integer(_ lo: Int, _ hi: Int) throws -> Int {
                guard let i = Int(value), i >= lo, i <= hi else {
                    throw Problem(400, "\(key) must be an integer in \(lo)...\(hi), got '\(value.prefix(40))'")
                }
                return i
            }
            func choice<T: RawRepresentable>(_ type: T.Type) throws -> T where T.RawValue == String, T: CaseIterable {
                guard let v = T(rawValue: value.lowercased()) else {
                    throw Problem(400, "\(key) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got '\(value.prefix(40))'")
                }
                return v
            }
            switch key {
            case "outputs":
                do { request.outputs = try OutputKind.parseList(value) } catch { throw Problem(400, "\(error)") }
                if request.outputs.contains(.normals), !model.architecture.hasNormals {
                    throw Problem(400, "normals need three-task weights; this model has two heads")
                }
            case "depth_format": request.depthFormat = try choice(DepthFormat.self)
            case "depth_scale": request.png16Scale = try number(1e-3, 1e6)
            case "fx": request.fx = try number(1e-3, 1e6)
            case "fy": request.fy = try number(1e-3, 1e6)
            case "hfov": request.horizontalFOV = try number(1, 179)
            case "cx": request.cx = try number(-1e6, 1e6)
            case "cy": request.cy = try number(-1e6, 1e6)
            case "stride": request.stride = try integer(1, 64)
            case "min_depth": request.minDepth = Float(try number(0, 1e5))
            case "max_depth": request.maxDepth = Float(try number(1e-3, 1e5))
            case "drop_classes":
                do { request.dropClasses = try parseClassList(value, names: model.info.classNames) } catch {
                    throw Problem(400, "drop_classes: \(error)")
                }
            case "colour_by", "color_by": request.colouring = try choice(PointColouring.self)
            case "ply_format": request.plyEncoding = try choice(PLYWriter.Encoding.self)
            case "overlay_format":
                switch value.lowercased() {
                case "png": request.overlayFormat = .png
                case "jpeg", "jpg": request.overlayFormat = .jpeg
                default: throw Problem(400, "overlay_format must be png or jpeg, got '\(value.prefix(40))'")
                }
            case "fast":
                switch value.lowercased() {
                case "", "1", "true", "yes": request.fast = true
                case "0", "false", "no": request.fast = false
                default: throw Problem(400, "fast must be true or false, got '\(value.prefix(40))'")
                }
            case "timeout_ms": timeoutMs = try integer(1, 600_000)
            default: break
            }
        }
        if let maxDepth = request.maxDepth, !(maxDepth > request.minDepth) {
            throw Problem(400, "max_depth must be greater than min_depth")
        }
    }
}
