import HydraImage
import HydraWeights

/// How points are coloured.
public enum PointColouring: String, Sendable, CaseIterable, Codable {
    case image, `class`
}

/// Which pixels become points, and with which camera.
public struct PointCloudOptions: Sendable {
    public var intrinsics: Intrinsics
    /// Keep every `stride`-th pixel in both directions.
    public var stride: Int = 1
    /// Keep depths in minDepth...maxDepth (metres); pixels without depth are always dropped.
    public var minDepth: Float = 0
    public var maxDepth: Float = .infinity
    public var dropClasses: Set<Int> = []
    public var colouring: PointColouring = .image

    public init(intrinsics: Intrinsics) { self.intrinsics = intrinsics }
}

/// The 3D segmentation: every kept pixel back-projected, with its colour and class.
/// Camera frame: x right, y down, z forward (metres).
public struct PointCloud: Sendable {
    public var count: Int { labels.count }
    /// x, y, z per point.
    public var positions: [Float] = []
    /// red, green, blue per point.
    public var colours: [UInt8] = []
    public var labels: [UInt8] = []
    /// nx, ny, nz per point, for three-task weights.
    public var normals: [Float]?

    /// X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z = depth, for pixel centres at integer (u, v).
    public init(_ d: DenseOutputs, image: RGBImage, classColours: [[UInt8]], options o: PointCloudOptions) {
        precondition(image.width == d.width && image.height == d.height)
        let k = o.intrinsics
        let fx = Float(k.fx), fy = Float(k.fy), cx = Float(k.cx), cy = Float(k.cy)
        let step = max(1, o.stride)
        let plane = d.width * d.height
        let estimate = (d.width / step + 1) * (d.height / step + 1)
        positions.reserveCapacity(estimate * 3)
        colours.reserveCapacity(estimate * 3)
        labels.reserveCapacity(estimate)
        var normals: [Float]? = d.normals == nil ? nil : []
        for v in stride(from: 0, to: d.height, by: step) {
            for u in stride(from: 0, to: d.width, by: step) {
                let i = v * d.width + u
                let z = d.depth[i]
                let label = d.labels[i]
                guard z.isFinite, z > 0, z >= o.minDepth, z <= o.maxDepth, !o.dropClasses.contains(Int(label)) else { continue }
                positions += [(Float(u) - cx) * z / fx, (Float(v) - cy) * z / fy, z]
                if o.colouring == .class {
                    let c = classColours[Int(label)]
                    colours += [c[0], c[1], c[2]]
                } else {
                    colours += [image.pixels[3 * i], image.pixels[3 * i + 1], image.pixels[3 * i + 2]]
                }
                labels.append(label)
                if let n = d.normals { normals! += [n[i], n[plane + i], n[2 * plane + i]] }
            }
        }
        self.normals = normals
    }
}

/// PLY (Stanford polygon format) for point clouds: binary little-endian or ASCII.
/// Per vertex: float x, y, z; [float nx, ny, nz;] uchar red, green, blue; uchar label (class id).
public enum PLYWriter {
    public enum Encoding: String, Sendable, CaseIterable, Codable { case binary, ascii }

    public static func header(_ pc: PointCloud, encoding: Encoding, comments: [String]) -> String {
        var h = "ply\nformat \(encoding == .binary ? "binary_little_endian" : "ascii") 1.0\n"
        for c in comments { h += "comment \(c.replacingOccurrences(of: "\n", with: " "))\n" }
        h += "element vertex \(pc.count)\nproperty float x\nproperty float y\nproperty float z\n"
        if pc.normals != nil { h += "property float nx\nproperty float ny\nproperty float nz\n" }
        h += "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar label\nend_header\n"
        return h
    }

    public static func encode(_ pc: PointCloud, encoding: Encoding = .binary, comments: [String] = []) -> [UInt8] {
        var out = Array(header(pc, encoding: encoding, comments: comments).utf8)
        let hasNormals = pc.normals != nil
        switch encoding {
        case .binary:
            let stride = 12 + (hasNormals ? 12 : 0) + 4
            out.reserveCapacity(out.count + pc.count * stride)
            for i in 0..<pc.count {
                for k in 0..<3 { withUnsafeBytes(of: pc.positions[3 * i + k].bitPattern.littleEndian) { out.append(contentsOf: $0) } }
                if let n = pc.normals {
                    for k in 0..<3 { withUnsafeBytes(of: n[3 * i + k].bitPattern.littleEndian) { out.append(contentsOf: $0) } }
                }
                out += [pc.colours[3 * i], pc.colours[3 * i + 1], pc.colours[3 * i + 2], pc.labels[i]]
            }
        case .ascii:
            var text = ""
            text.reserveCapacity(pc.count * 48)
            for i in 0..<pc.count {
                // Float's description is the shortest text that reads back to the same value.
                text += "\(pc.positions[3 * i]) \(pc.positions[3 * i + 1]) \(pc.positions[3 * i + 2])"
                if let n = pc.normals { text += " \(n[3 * i]) \(n[3 * i + 1]) \(n[3 * i + 2])" }
                text += " \(pc.colours[3 * i]) \(pc.colours[3 * i + 1]) \(pc.colours[3 * i + 2]) \(pc.labels[i])\n"
            }
            out += Array(text.utf8)
        }
        return out
    }
}

/// The camera to back-project with: explicit values win; otherwise the model's calibration,
/// scaled when the image size differs from the calibration's.
public enum CameraResolver {
    public static func resolve(model: Intrinsics, width: Int, height: Int,
                               fx: Double? = nil, fy: Double? = nil, cx: Double? = nil, cy: Double? = nil) -> (Intrinsics, note: String) {
        var k = model
        var note = "calibration of the model's preset (\(model.width)x\(model.height))"
        if model.width != width || model.height != height {
            k = model.scaled(toWidth: width, height: height)
            note = "calibration of the model's preset scaled from \(model.width)x\(model.height) to \(width)x\(height)"
        }
        var given: [String] = []
        if let fx { k.fx = fx; given.append("fx") }
        if let fy { k.fy = fy; given.append("fy") }
        if let cx { k.cx = cx; given.append("cx") }
        if let cy { k.cy = cy; given.append("cy") }
        if !given.isEmpty { note += "; \(given.joined(separator: ", ")) given by the caller" }
        k.width = width
        k.height = height
        return (k, note)
    }
}
