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

    /// One layer of the network, named as in the official checkpoint.
    public struct Layer: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// A convolution followed by BatchNorm (`NAME.0.weight`, `NAME.1.*`; folded at load).
            case convBN(stride: Int, depthwise: Bool, relu6: Bool)
            /// A convolution without BatchNorm (`NAME.weight`, and `NAME.bias` for the heads).
            case conv(bias: Bool)
            /// A depthwise 1x1 convolution without bias: a per-channel scale (`NAME.weight`).
            case scale
        }

        public let name: String
        public let kind: Kind
        /// PyTorch shape of the weight.
        public let shape: [Int]
    }

    /// The layers in checkpoint order, each spelled once, and the roles the graph wires them by.
    /// `convs` and `scales` are separate index spaces: a graph step holds the index of its layer.
    public struct LayerTable: Sendable {
        public private(set) var convs: [Layer] = []
        public private(set) var scales: [Layer] = []
        /// Checkpoint order over both kinds (`.conv(i)` or `.scale(i)`), for the parameter list.
        private(set) var order: [(isScale: Bool, index: Int)] = []
        private(set) var stem = 0
        /// Per MobileNetV2 stage, per repeat: the expansion, depthwise and projection convolutions.
        private(set) var blocks: [[(expand: Int, depthwise: Int, project: Int)]] = []
        /// Encoder layer (3...8) to the 1x1 convolution that takes its output into the decoder.
        private(set) var skips: [Int: Int] = [:]
        /// crp2-4's four stage convolutions; crp1's four stage scales.
        private(set) var crpConvs: [Int: [Int]] = [:]
        private(set) var crp1Scales: [Int] = []
        private(set) var adapts: [Int: Int] = [:]
        /// Per head ("segm", "depth", "normal"): its pre_* scale and its 3x3 convolution.
        private(set) var heads: [(name: String, pre: Int, conv: Int)] = []

        private mutating func conv(_ name: String, _ kind: Layer.Kind, _ shape: [Int]) -> Int {
            convs.append(Layer(name: name, kind: kind, shape: shape))
            order.append((false, convs.count - 1))
            return convs.count - 1
        }

        private mutating func scale(_ name: String, _ channels: Int) -> Int {
            scales.append(Layer(name: name, kind: .scale, shape: [channels, 1, 1, 1]))
            order.append((true, scales.count - 1))
            return scales.count - 1
        }

        init(_ a: Architecture) {
            stem = conv("layer1", .convBN(stride: 2, depthwise: false, relu6: true), [32, 3, 3, 3])
            var cin = 32
            for (i, b) in Architecture.blocks.enumerated() {
                var stage: [(Int, Int, Int)] = []
                for r in 0..<b.n {
                    let p = "layer\(i + 2).\(r).output", hidden = cin * b.t
                    let e = conv("\(p).0", .convBN(stride: 1, depthwise: false, relu6: true), [hidden, cin, 1, 1])
                    let d = conv("\(p).1", .convBN(stride: r == 0 ? b.s : 1, depthwise: true, relu6: true), [hidden, 1, 3, 3])
                    let o = conv("\(p).2", .convBN(stride: 1, depthwise: false, relu6: false), [b.c, hidden, 1, 1])
                    stage.append((e, d, o))
                    cin = b.c
                }
                blocks.append(stage)
            }
            let w = Architecture.decoderWidth
            for (layer, c) in Architecture.skips.reversed() { skips[layer] = conv("conv\(layer)", .conv(bias: false), [w, c, 1, 1]) }
            for crp in [4, 3, 2, 1] {
                for i in 1...4 {
                    let name = "crp\(crp).0.\(i)_outvar_dimred"
                    if crp == 1 { crp1Scales.append(scale(name, w)) } else { crpConvs[crp, default: []].append(conv(name, .conv(bias: false), [w, w, 1, 1])) }
                }
            }
            for k in [4, 3, 2] { adapts[k] = conv("conv_adapt\(k)", .conv(bias: false), [w, w, 1, 1]) }
            for (head, out) in [("depth", 1), ("segm", a.numClasses)] + (a.hasNormals ? [("normal", 3)] : []) {
                let pre = scale("pre_\(head)", w)
                heads.append((head, pre, conv(head, .conv(bias: true), [out, w, 3, 3])))
            }
            // The checkpoint lists depth first; the graph builds (and the runner returns) segmentation first.
            heads.swapAt(0, 1)
        }
    }

    /// The layers of this architecture.
    public var layers: LayerTable { LayerTable(self) }

    /// Every parameter the model needs, in checkpoint order, with its PyTorch shape.
    /// BatchNorm `num_batches_tracked` counters are bookkeeping and not listed.
    public var parameters: [(name: String, shape: [Int])] {
        let t = layers
        var out: [(String, [Int])] = []
        for (isScale, i) in t.order {
            let layer = isScale ? t.scales[i] : t.convs[i]
            switch layer.kind {
            case .convBN:
                out.append(("\(layer.name).0.weight", layer.shape))
                for p in ["weight", "bias", "running_mean", "running_var"] { out.append(("\(layer.name).1.\(p)", [layer.shape[0]])) }
            case let .conv(bias):
                out.append(("\(layer.name).weight", layer.shape))
                if bias { out.append(("\(layer.name).bias", [layer.shape[0]])) }
            case .scale:
                out.append(("\(layer.name).weight", layer.shape))
            }
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
