import Foundation
import HydraEngine
import HydraImage
import HydraWeights

/// The outputs a user can ask for.
public enum OutputKind: String, Sendable, CaseIterable, Codable {
    case segmentation, depth, pointcloud, overlay, normals, summary

    public static let defaults: [OutputKind] = [.segmentation, .depth, .summary]
}

extension OutputKind {
    /// Outputs from a comma-separated list ("segmentation,depth"); duplicates are dropped.
    public static func parseList(_ list: String) throws -> [OutputKind] {
        var kinds: [OutputKind] = []
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !name.isEmpty {
            guard let k = OutputKind(rawValue: name) else {
                throw RequestError("unknown output '\(name.prefix(40))'; choose from \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !kinds.contains(k) { kinds.append(k) }
        }
        guard !kinds.isEmpty else { throw RequestError("outputs must name at least one output") }
        return kinds
    }
}

/// Class ids from a comma-separated list of class names (any case) or ids, checked against `names`.
public func parseClassList(_ list: String, names: [String]) throws -> Set<Int> {
    var ids = Set<Int>()
    for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !item.isEmpty {
        if let i = Int(item), names.indices.contains(i) { ids.insert(i); continue }
        guard let i = names.firstIndex(where: { $0.lowercased() == item }) else {
            throw RequestError("unknown class '\(item.prefix(40))'; the model's classes are \(names.joined(separator: ", "))")
        }
        ids.insert(i)
    }
    return ids
}

/// A request option that does not fit the model or the formats; the message is for people.
public struct RequestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Everything that shapes the outputs of one request.
public struct OutputRequest: Sendable {
    public var outputs: [OutputKind] = OutputKind.defaults
    public var depthFormat: DepthFormat = .npy
    public var png16Scale: Double = DepthOutputs.defaultPNG16Scale
    public var fx: Double?, fy: Double?, cx: Double?, cy: Double?
    /// Horizontal field of view in degrees: square pixels, centred principal point (fx and friends win).
    public var horizontalFOV: Double?
    public var stride = 1
    public var minDepth: Float = 0
    public var maxDepth: Float?
    public var dropClasses: Set<Int> = []
    public var colouring: PointColouring = .image
    public var plyEncoding: PLYWriter.Encoding = .binary
    public var overlayFormat: ImageDecoder.Format = .png
    public var fast = false
    /// PNG level and row filters for every picture output.
    public var png = PNGCodec.Options.outputs

    public init() {}
}

/// One encoded output.
public struct RenderedPart: Sendable {
    public var kind: OutputKind
    /// Name of the part (form field name / file suffix base), e.g. "segmentation", "normals_image".
    public var name: String
    /// File name after the image stem, e.g. "_segmentation.png", ".ply".
    public var fileSuffix: String
    public var contentType: String
    public var bytes: [UInt8]
    /// Facts a reader needs (shape, unit, scale, range), as HTTP-style header fields.
    public var headers: [(String, String)] = []
}

/// Turns one prediction into the requested outputs. Owns an `Upsampler`; one per worker.
public final class Renderer: @unchecked Sendable {
    public let upsampler: Upsampler

    public init(threads: Int = 1) { upsampler = Upsampler(threads: threads) }

    /// Encodes the requested outputs in order; the summary (if asked) is last and carries the
    /// timings of everything before it, including `timings` measured by the caller (decode, ...).
    /// `networkInput` is the size the network ran at when it was not the frame's own, and `note`
    /// says why (both go into the summary). `dense` reuses outputs already brought to the frame's size.
    public func render(image: RGBImage, prediction p: Prediction, model: Model, modelName: String,
                       request r: OutputRequest, timings: [(String, Double)] = [],
                       networkInput: Summary.Size? = nil, note: String? = nil, dense given: DenseOutputs? = nil) throws -> [RenderedPart] {
        var times = timings
        // Zero when the first layer reads the 8-bit image itself: preprocessing is then inside "network".
        if p.preprocessSeconds > 0 { times.append(("preprocess", p.preprocessSeconds * 1e3)) }
        times.append(("network", p.networkSeconds * 1e3))
        func timed<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
            let t0 = Date()
            defer { times.append((stage, Date().timeIntervalSince(t0) * 1e3)) }
            return try body()
        }
        let info = model.info
        let dense = given ?? timed("upsample") { upsampler.upsample(p, width: image.width, height: image.height, fast: r.fast) }
        let (camera, cameraNote) = CameraResolver.resolve(model: info.intrinsics, width: image.width, height: image.height,
                                                          fx: r.fx, fy: r.fy, cx: r.cx, cy: r.cy,
                                                          horizontalFOV: r.horizontalFOV)
        var parts: [RenderedPart] = []
        var points: Int?
        var colourRange: ClosedRange<Float>?
        // Colour depth's range: min_depth...max_depth when max_depth is given, else the frame's percentiles.
        let givenRange = r.maxDepth.map { r.minDepth...max(r.minDepth + 1e-3, $0) }
        let size = [("X-Width", "\(image.width)"), ("X-Height", "\(image.height)")]
        for kind in r.outputs where kind != .summary {
            switch kind {
            case .segmentation:
                let bytes = try timed("encode_segmentation") {
                    try ImageOutputs.segmentationPNG(dense, colours: info.colours, options: r.png)
                }
                parts.append(RenderedPart(kind: kind, name: "segmentation", fileSuffix: "_segmentation.png",
                                          contentType: "image/png", bytes: bytes, headers: size + [("X-Classes", "\(info.classNames.count)")]))
            case .depth:
                let e = try timed("encode_depth") {
                    try DepthOutputs.encode(dense.depth, width: image.width, height: image.height, format: r.depthFormat,
                                            png16Scale: r.png16Scale, colourRange: givenRange,
                                            png: r.png)
                }
                var headers = size + [("X-Depth-Format", e.format.rawValue), ("X-Depth-Unit", "m"),
                                      ("X-Shape", "\(image.height),\(image.width)")]
                if e.format == .f32 { headers.append(("X-Dtype", "float32-le")) }
                if let s = e.scale { headers.append(("X-Depth-Scale", "\(s)")) }
                if let range = e.range {
                    colourRange = range
                    headers.append(("X-Depth-Range", "\(range.lowerBound),\(range.upperBound)"))
                }
                parts.append(RenderedPart(kind: kind, name: "depth", fileSuffix: r.depthFormat.fileSuffix,
                                          contentType: r.depthFormat.contentType, bytes: e.bytes, headers: headers))
            case .pointcloud:
                let bytes = timed("encode_pointcloud") { () -> [UInt8] in
                    var o = PointCloudOptions(intrinsics: camera)
                    o.stride = r.stride
                    o.minDepth = r.minDepth
                    o.maxDepth = r.maxDepth ?? .infinity
                    o.dropClasses = r.dropClasses
                    o.colouring = r.colouring
                    let pc = PointCloud(dense, image: image, classColours: info.colours, options: o)
                    points = pc.count
                    let comments = [
                        "hydra 3D segmentation: camera frame x right, y down, z forward, metres",
                        "intrinsics fx \(camera.fx) fy \(camera.fy) cx \(camera.cx) cy \(camera.cy) (\(cameraNote))",
                        "label = class id: " + info.classNames.enumerated().map { "\($0.offset) \($0.element)" }.joined(separator: ", "),
                    ]
                    return PLYWriter.encode(pc, encoding: r.plyEncoding, comments: comments)
                }
                parts.append(RenderedPart(kind: kind, name: "pointcloud", fileSuffix: ".ply", contentType: "model/x-ply",
                                          bytes: bytes, headers: [("X-Points", "\(points ?? 0)"), ("X-PLY-Format", r.plyEncoding.rawValue)]))
            case .overlay:
                let (bytes, type, ext) = try timed("encode_overlay") { () -> ([UInt8], String, String) in
                    let blended = ImageOutputs.overlay(image, labels: dense.labels, colours: info.colours)
                    if r.overlayFormat == .jpeg { return (try JPEGCodec.encode(blended, quality: 90), "image/jpeg", "jpg") }
                    return (try PNGCodec.encode(width: image.width, height: image.height, layout: .rgb8, samples: blended.pixels,
                                                options: r.png), "image/png", "png")
                }
                parts.append(RenderedPart(kind: kind, name: "overlay", fileSuffix: "_overlay.\(ext)", contentType: type,
                                          bytes: bytes, headers: size))
            case .normals:
                guard let n = dense.normals else {
                    throw RenderError.unavailable("normals need three-task weights; model \(modelName) has two heads")
                }
                let (npy, png) = try timed("encode_normals") {
                    (NPY.encode(n, shape: [3, image.height, image.width]), try ImageOutputs.normalsPNG(dense, options: r.png)!)
                }
                parts.append(RenderedPart(kind: kind, name: "normals", fileSuffix: "_normals.npy", contentType: "application/x-npy",
                                          bytes: npy, headers: [("X-Shape", "3,\(image.height),\(image.width)")]))
                parts.append(RenderedPart(kind: kind, name: "normals_image", fileSuffix: "_normals.png", contentType: "image/png",
                                          bytes: png, headers: size))
            case .summary:
                break
            }
        }
        if r.outputs.contains(.summary) {
            // What a colour depth picture of this frame uses (the page colours the float depth with it too).
            if colourRange == nil { colourRange = givenRange ?? DepthOutputs.autoRange(dense.depth) }
            let t0 = Date()
            let (classes, all) = Summary.classStats(dense, info: info)
            times.append(("summary", Date().timeIntervalSince(t0) * 1e3))
            let summary = Summary(
                model: modelName, modelDescription: info.description, preset: info.preset.rawValue, trained: info.trained,
                input: .init(width: image.width, height: image.height),
                networkInput: networkInput ?? .init(width: image.width, height: image.height),
                networkOutput: .init(width: p.width, height: p.height), note: note,
                upsampling: r.fast ? "fast: argmax at network resolution + nearest labels, bilinear depth" : "bicubic (OpenCV INTER_CUBIC, a = -0.75)",
                timingsMs: Dictionary(times.map { ($0.0, ($0.1 * 1000).rounded() / 1000) }, uniquingKeysWith: +), classes: classes,
                depthMinM: all?.0, depthMedianM: all?.1, depthMaxM: all?.2,
                camera: .init(fx: camera.fx, fy: camera.fy, cx: camera.cx, cy: camera.cy, source: cameraNote),
                points: points, depthColourRangeM: colourRange.map { [$0.lowerBound, $0.upperBound] },
                depthColourLegend: colourRange.map { range in
                    DepthColourMap.ticks(range: range).map {
                        .init(metres: $0.metres, position: $0.position, rgb: DepthColourMap.table[Int(($0.position * 255).rounded())])
                    }
                })
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            parts.append(RenderedPart(kind: .summary, name: "summary", fileSuffix: "_summary.json", contentType: "application/json",
                                      bytes: Array(try encoder.encode(summary))))
        }
        return parts
    }
}

public enum RenderError: Error, CustomStringConvertible {
    case unavailable(String)
    public var description: String {
        switch self { case let .unavailable(s): return s }
    }
}
