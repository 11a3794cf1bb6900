/// The multi-task Light-Weight RefineNet of Nekrasov et al. (ICRA 2019) on MobileNetV2,
/// described by its official parameter names and shapes (the authors' checkpoints' state dict; the
/// list below is checked against a checkpoint of the reference network in Tests/Reference).
public struct Architecture: Sendable, Equatable {
    public var numClasses: Int
    /// Three-task checkpoints add a surface-normals head.
    public var hasNormals: Bool

    public init(numClasses: Int, hasNormals: Bool) {
        self.numClasses = numClasses
        self.hasNormals = hasNormals
    }

    /// MobileNetV2 inverted-residual settings: expansion, output channels, repeats, stride.
    static let blocks: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]
    static let decoderWidth = 256
    /// Encoder layers whose outputs feed the decoder, with their channel counts.
    static let skips: [(layer: Int, channels: Int)] = [(3, 24), (4, 32), (5, 64), (6, 96), (7, 160), (8, 320)]

    /// Every parameter the model needs, in checkpoint order, with its PyTorch shape.
    /// BatchNorm `num_batches_tracked` counters are bookkeeping and not listed.
    public var parameters: [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        func convBN(_ prefix: String, _ cin: Int, _ cout: Int, _ k: Int, groups: Int) {
            out.append(("\(prefix).0.weight", [cout, cin / groups, k, k]))
            for p in ["weight", "bias", "running_mean", "running_var"] { out.append(("\(prefix).1.\(p)", [cout])) }
        }
        convBN("layer1", 3, 32, 3, groups: 1)
        var cin = 32
        for (i, b) in Self.blocks.enumerated() {
            for r in 0..<b.n {
                let p = "layer\(i + 2).\(r).output"
                let hidden = cin * b.t
                convBN("\(p).0", cin, hidden, 1, groups: 1)
                convBN("\(p).1", hidden, hidden, 3, groups: hidden)
                convBN("\(p).2", hidden, b.c, 1, groups: 1)
                cin = b.c
            }
        }
        let w = Self.decoderWidth
        for (layer, c) in Self.skips.reversed() { out.append(("conv\(layer).weight", [w, c, 1, 1])) }
        for crp in [4, 3, 2, 1] {
            for i in 1...4 {
                out.append(("crp\(crp).0.\(i)_outvar_dimred.weight", crp == 1 ? [w, 1, 1, 1] : [w, w, 1, 1]))
            }
        }
        for a in [4, 3, 2] { out.append(("conv_adapt\(a).weight", [w, w, 1, 1])) }
        out.append(("pre_depth.weight", [w, 1, 1, 1]))
        out.append(("depth.weight", [1, w, 3, 3]))
        out.append(("depth.bias", [1]))
        out.append(("pre_segm.weight", [w, 1, 1, 1]))
        out.append(("segm.weight", [numClasses, w, 3, 3]))
        out.append(("segm.bias", [numClasses]))
        if hasNormals {
            out.append(("pre_normal.weight", [w, 1, 1, 1]))
            out.append(("normal.weight", [3, w, 3, 3]))
            out.append(("normal.bias", [3]))
        }
        return out
    }

    /// Reads the class count from `segm.weight` and the heads from the names present.
    public static func infer(shapes: [String: [Int]]) throws -> Architecture {
        guard let segm = shapes["segm.weight"], segm.count == 4, segm[0] > 0 else {
            throw EngineError.invalidWeights("no segmentation head: 'segm.weight' is missing or not 4-D")
        }
        return Architecture(numClasses: segm[0], hasNormals: shapes["normal.weight"] != nil)
    }

    /// Differences between `shapes` and this architecture: missing, unexpected and mis-shaped names.
    public func mismatches(_ shapes: [String: [Int]]) -> (missing: [String], unexpected: [String], wrongShape: [String]) {
        var expected: [String: [Int]] = [:]
        for p in parameters { expected[p.name] = p.shape }
        var missing: [String] = [], wrong: [String] = []
        for p in parameters {
            guard let s = shapes[p.name] else { missing.append(p.name); continue }
            if s != p.shape {
                wrong.append("\(p.name): expected \(p.shape.map(String.init).joined(separator: "x")), got \(s.map(String.init).joined(separator: "x"))")
            }
        }
        let unexpected = shapes.keys.filter { expected[$0] == nil && !$0.hasSuffix("num_batches_tracked") }.sorted()
        return (missing, unexpected, wrong)
    }

    /// Throws unless `shapes` holds exactly this architecture's parameters.
    public func validate(_ shapes: [String: [Int]]) throws {
        let m = mismatches(shapes)
        var lines: [String] = []
        func list(_ title: String, _ items: [String]) {
            guard !items.isEmpty else { return }
            let shown = items.prefix(12).joined(separator: ", ")
            lines.append("\(items.count) \(title): \(shown)\(items.count > 12 ? ", ..." : "")")
        }
        list("missing", m.missing)
        list("unexpected", m.unexpected)
        list("with the wrong shape", m.wrongShape)
        if !lines.isEmpty {
            throw EngineError.invalidWeights("weights do not match the network (\(numClasses) classes, "
                + "\(hasNormals ? 3 : 2) heads): " + lines.joined(separator: "; "))
        }
    }
}

public enum EngineError: Error, Equatable, CustomStringConvertible {
    case invalidWeights(String)
    case inputTooSmall(width: Int, height: Int)
    case xnnpack(String)
    /// This CPU cannot run what was asked (a precision without its instructions).
    case unsupported(String)

    public var description: String {
        switch self {
        case let .invalidWeights(s): return s
        case let .inputTooSmall(w, h): return "input is \(w)x\(h); both sides must be at least 32 pixels"
        case let .xnnpack(s): return "XNNPACK: \(s)"
        case let .unsupported(s): return s
        }
    }
}
