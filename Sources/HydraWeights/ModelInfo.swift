import Foundation

/// Pinhole camera intrinsics at a reference image size.
public struct Intrinsics: Codable, Sendable, Equatable {
    public var fx: Double, fy: Double, cx: Double, cy: Double
    /// The image size these values belong to.
    public var width: Int, height: Int

    public init(fx: Double, fy: Double, cx: Double, cy: Double, width: Int, height: Int) {
        self.fx = fx; self.fy = fy; self.cx = cx; self.cy = cy; self.width = width; self.height = height
    }

    /// The same camera for an image resized to `w` x `h` (pixel-centre convention).
    public func scaled(toWidth w: Int, height h: Int) -> Intrinsics {
        let sx = Double(w) / Double(width), sy = Double(h) / Double(height)
        return Intrinsics(fx: fx * sx, fy: fy * sy, cx: (cx + 0.5) * sx - 0.5, cy: (cy + 0.5) * sy - 0.5, width: w, height: h)
    }
}

/// The data sets the authors trained on; each fixes classes, colours and a camera.
public enum Preset: String, Codable, Sendable, CaseIterable {
    case kitti, nyud, nyudkitti

    public var classNames: [String] {
        switch self {
        case .kitti: return ["sky", "building", "road", "sidewalk", "vegetation", "car"]
        case .nyud: return Self.nyudNames
        case .nyudkitti: return Self.nyudNames + Preset.kitti.classNames
        }
    }

    /// Colour of class i. KITTI indexes its colour map with the class id; NYUD with id + 1
    /// (entry 0 is black, kept for void), as the data sets' own colour maps do.
    public var colours: [[UInt8]] {
        switch self {
        case .kitti: return [[128, 128, 128], [128, 0, 0], [128, 64, 128], [0, 0, 192], [128, 128, 0], [64, 0, 128]]
        case .nyud: return (1...40).map(Self.vocColour)
        case .nyudkitti: return Preset.nyud.colours + Preset.kitti.colours
        }
    }

    /// The published calibration of the data set's camera.
    public var intrinsics: Intrinsics {
        switch self {
        // KITTI raw, camera 2 (P2 of the 2011_09_26 drives), 1242 x 375.
        case .kitti, .nyudkitti: return Intrinsics(fx: 721.5377, fy: 721.5377, cx: 609.5593, cy: 172.854, width: 1242, height: 375)
        // NYU Depth v2 Kinect colour camera, 640 x 480.
        case .nyud: return Intrinsics(fx: 518.8579, fy: 519.4696, cx: 325.5824, cy: 253.7362, width: 640, height: 480)
        }
    }

    /// Depth the preset's data is meaningful to, in metres.
    public var maxDepth: Double { self == .nyud ? 10 : 80 }

    /// The usual preset for a class count.
    public static func forClassCount(_ n: Int) -> Preset? {
        switch n {
        case 6: return .kitti
        case 40: return .nyud
        case 46: return .nyudkitti
        default: return nil
        }
    }

    /// The PASCAL VOC colour map (bit-interleaved), which NYUD's palette follows.
    public static func vocColour(_ i: Int) -> [UInt8] {
        var r = 0, g = 0, b = 0, c = i
        for j in 0..<8 {
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        }
        return [UInt8(r), UInt8(g), UInt8(b)]
    }

    static let nyudNames = [
        "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
        "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
        "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
        "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
    ]
}

/// What a weights file says about its model, kept as strings in safetensors `__metadata__`.
public struct ModelInfo: Codable, Sendable, Equatable {
    public var preset: Preset
    public var classNames: [String]
    public var colours: [[UInt8]]
    public var intrinsics: Intrinsics
    /// Where the weights came from, for people: "converted from X", "untrained: ...".
    public var description: String
    /// False for the generated untrained default.
    public var trained: Bool
    /// What `--precision int8` needs (`hydra calibrate`); nil for an uncalibrated model.
    public var int8: Int8Calibration?

    public init(preset: Preset, classNames: [String]? = nil, colours: [[UInt8]]? = nil,
                intrinsics: Intrinsics? = nil, description: String, trained: Bool, int8: Int8Calibration? = nil) {
        self.preset = preset
        self.classNames = classNames ?? preset.classNames
        self.colours = colours ?? preset.colours
        self.intrinsics = intrinsics ?? preset.intrinsics
        self.description = description
        self.trained = trained
        self.int8 = int8
    }

    public var metadata: [String: String] {
        func json<T: Encodable>(_ v: T) -> String {
            let e = JSONEncoder()
            e.outputFormatting = .sortedKeys // the same model, the same bytes
            return String(decoding: (try? e.encode(v)) ?? Data(), as: UTF8.self)
        }
        var m = [
            "format": "hydra-multitask-refinenet",
            "preset": preset.rawValue,
            "classes": json(classNames),
            "colours": json(colours),
            "intrinsics": json(intrinsics),
            "description": description,
            "trained": trained ? "true" : "false",
        ]
        if let int8 { m["int8"] = json(int8) }
        return m
    }

    /// Reads metadata; missing fields fall back to the preset's (or to `fallback` for the preset).
    public init(metadata m: [String: String], fallbackPreset: Preset) throws {
        func decode<T: Decodable>(_ key: String, _ type: T.Type) throws -> T? {
            guard let s = m[key] else { return nil }
            do { return try JSONDecoder().decode(T.self, from: Data(s.utf8)) } catch {
                throw WeightsError.invalidSafetensors("metadata '\(key)' is not valid JSON of the expected shape")
            }
        }
        var preset = fallbackPreset
        if let p = m["preset"] {
            guard let pp = Preset(rawValue: p) else { throw WeightsError.invalidSafetensors("unknown preset '\(p)' in metadata") }
            preset = pp
        }
        if let t = m["trained"], t != "true", t != "false" {
            throw WeightsError.invalidSafetensors("metadata 'trained' must be true or false, not '\(t.prefix(20))'")
        }
        self.init(preset: preset, classNames: try decode("classes", [String].self),
                  colours: try decode("colours", [[UInt8]].self), intrinsics: try decode("intrinsics", Intrinsics.self),
                  description: m["description"] ?? "", trained: m["trained"] != "false",
                  int8: try decode("int8", Int8Calibration.self))
        try validate()
    }

    /// Every field as the outputs will use it: a bad file is refused at load, never a trap at request time.
    public func validate() throws {
        func bad(_ why: String) -> WeightsError { .invalidSafetensors("metadata: \(why)") }
        guard !classNames.isEmpty, classNames.count <= 256 else { throw bad("1 to 256 class names are needed, found \(classNames.count)") }
        for (i, name) in classNames.enumerated() {
            guard !name.isEmpty, name.count <= 64, !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw bad("class name \(i) must be 1-64 printable characters")
            }
        }
        guard Set(classNames.map { $0.lowercased() }).count == classNames.count else { throw bad("class names must be distinct") }
        guard colours.count == classNames.count else {
            throw bad("\(colours.count) class colours for \(classNames.count) class names")
        }
        if let i = colours.firstIndex(where: { $0.count != 3 }) {
            throw bad("class colour \(i) has \(colours[i].count) components; colours are [r, g, b] with 0-255 each")
        }
        let k = intrinsics
        guard k.fx.isFinite, k.fy.isFinite, k.fx > 0, k.fy > 0 else { throw bad("focal lengths fx, fy must be finite and positive") }
        guard k.cx.isFinite, k.cy.isFinite, abs(k.cx) < 1e6, abs(k.cy) < 1e6 else { throw bad("principal point cx, cy must be finite") }
        guard (1...100_000).contains(k.width), (1...100_000).contains(k.height) else {
            throw bad("intrinsics width and height must be 1 to 100000 pixels")
        }
        guard description.count <= 4096 else { throw bad("description longer than 4096 characters") }
        try int8?.validate()
    }
}
