import Foundation
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
        let capacity = ((d.width + step - 1) / step) * ((d.height + step - 1) / step)
        var pos = [Float](repeating: 0, count: capacity * 3)
        var rgb = [UInt8](repeating: 0, count: capacity * 3)
        var lab = [UInt8](repeating: 0, count: capacity)
        var nrm: [Float]? = d.normals == nil ? nil : [Float](repeating: 0, count: capacity * 3)
        let byClass = o.colouring == .class
        let dropped = (0..<256).map { o.dropClasses.contains($0) }
        var n = 0
        for v in stride(from: 0, to: d.height, by: step) {
            let fv = (Float(v) - cy) / fy
            for u in stride(from: 0, to: d.width, by: step) {
                let i = v * d.width + u
                let z = d.depth[i]
                let label = d.labels[i]
                guard z.isFinite, z > 0, z >= o.minDepth, z <= o.maxDepth, !dropped[Int(label)] else { continue }
                pos[3 * n] = (Float(u) - cx) * z / fx
                pos[3 * n + 1] = fv * z
                pos[3 * n + 2] = z
                if byClass {
                    let c = classColours[Int(label)]
                    rgb[3 * n] = c[0]; rgb[3 * n + 1] = c[1]; rgb[3 * n + 2] = c[2]
                } else {
                    rgb[3 * n] = image.pixels[3 * i]; rgb[3 * n + 1] = image.pixels[3 * i + 1]; rgb[3 * n + 2] = image.pixels[3 * i + 2]
                }
                lab[n] = label
                if let dn = d.normals {
                    nrm![3 * n] = dn[i]; nrm![3 * n + 1] = dn[plane + i]; nrm![3 * n + 2] = dn[2 * plane + i]
                }
                n += 1
            }
        }
        pos.removeLast((capacity - n) * 3)
        rgb.removeLast((capacity - n) * 3)
        lab.removeLast(capacity - n)
        nrm?.removeLast((capacity - n) * 3)
        positions = pos
        colours = rgb
        labels = lab
        normals = nrm
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
            let start = out.count
            out += [UInt8](repeating: 0, count: pc.count * stride)
            out.withUnsafeMutableBytes { raw in
                let base = raw.baseAddress! + start
                for i in 0..<pc.count {
                    let p = base + i * stride
                    for k in 0..<3 { p.storeBytes(of: pc.positions[3 * i + k].bitPattern.littleEndian, toByteOffset: 4 * k, as: UInt32.self) }
                    var o = 12
                    if let n = pc.normals {
                        for k in 0..<3 { p.storeBytes(of: n[3 * i + k].bitPattern.littleEndian, toByteOffset: 12 + 4 * k, as: UInt32.self) }
                        o = 24
                    }
                    p.storeBytes(of: pc.colours[3 * i], toByteOffset: o, as: UInt8.self)
                    p.storeBytes(of: pc.colours[3 * i + 1], toByteOffset: o + 1, as: UInt8.self)
                    p.storeBytes(of: pc.colours[3 * i + 2], toByteOffset: o + 2, as: UInt8.self)
                    p.storeBytes(of: pc.labels[i], toByteOffset: o + 3, as: UInt8.self)
                }
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

/// The camera to back-project with. Explicit values win; then a horizontal field of view; otherwise
/// the model's calibration, scaled when the frame has the calibration's shape (within 2 %). A frame
/// of another shape did not come from that camera: it keeps square pixels (one scale factor, from
/// the calibration's horizontal field of view) and a centred principal point, rather than
/// stretching one axis to fit.
public enum CameraResolver {
    public static func resolve(model: Intrinsics, width: Int, height: Int,
                               fx: Double? = nil, fy: Double? = nil, cx: Double? = nil, cy: Double? = nil,
                               horizontalFOV: Double? = nil) -> (Intrinsics, note: String) {
        let centred = (x: Double(width - 1) / 2, y: Double(height - 1) / 2)
        var k: Intrinsics
        var note: String
        let aspect = Double(width) / Double(height), modelAspect = Double(model.width) / Double(model.height)
        if let fov = horizontalFOV {
            let f = Double(width) / 2 / tan(fov * .pi / 360)
            k = Intrinsics(fx: f, fy: f, cx: centred.x, cy: centred.y, width: width, height: height)
            note = String(format: "horizontal field of view %.4g degrees given by the caller: square pixels, principal point at the centre", fov)
        } else if model.width == width && model.height == height {
            k = model
            note = "calibration of the model's preset (\(model.width)x\(model.height))"
        } else if abs(aspect / modelAspect - 1) <= 0.02 {
            k = model.scaled(toWidth: width, height: height)
            note = "calibration of the model's preset scaled from \(model.width)x\(model.height) to \(width)x\(height)"
        } else {
            let f = model.fx * Double(width) / Double(model.width)
            k = Intrinsics(fx: f, fy: f, cx: centred.x, cy: centred.y, width: width, height: height)
            let fov = 2 * atan(Double(model.width) / 2 / model.fx) * 180 / .pi
            note = String(format: "the frame's shape (%dx%d) is not the preset camera's (%dx%d): square pixels with the preset's "
                + "horizontal field of view (%.1f degrees), principal point at the centre; pass fx/fy/cx/cy or a field of view "
                + "for your camera", width, height, model.width, model.height, fov)
        }
        var given: [String] = []
        if let fx { k.fx = fx; given.append("fx") }
        if let fy { k.fy = fy; given.append("fy") } else if let fx { k.fy = fx } // square pixels unless told otherwise
        if let cx { k.cx = cx; given.append("cx") }
        if let cy { k.cy = cy; given.append("cy") }
        if !given.isEmpty { note += "; \(given.joined(separator: ", ")) given by the caller" + (fx != nil && fy == nil ? " (fy = fx)" : "") }
        k.width = width
        k.height = height
        return (k, note)
    }
}
