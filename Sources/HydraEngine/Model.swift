import HydraWeights

/// Where a model's parameters come from: a safetensors file, a checkpoint, generated values.
public protocol ParameterSource {
    /// Every parameter's PyTorch shape, by official name.
    var parameterShapes: [String: [Int]] { get }
    /// A parameter's values, row-major in its PyTorch shape.
    func values(_ name: String) throws -> [Float]
}

extension SafeTensorsFile: ParameterSource {
    public var parameterShapes: [String: [Int]] { tensors.mapValues(\.shape) }
    public func values(_ name: String) throws -> [Float] { try floats(name) }
}

/// Parameters held in memory.
public struct ParameterDictionary: ParameterSource, Sendable {
    public var entries: [String: (shape: [Int], values: [Float])]
    public init(_ entries: [String: (shape: [Int], values: [Float])]) { self.entries = entries }
    public var parameterShapes: [String: [Int]] { entries.mapValues(\.shape) }
    public func values(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw EngineError.invalidWeights("missing parameter \(name)") }
        return e.values
    }
}

/// A convolution with BatchNorm folded in, weights in XNNPACK's [out][kh][kw][in/groups] order.
public struct FoldedConv: Sendable {
    public let name: String
    public let inputChannels: Int, outputChannels: Int, kernel: Int, stride: Int, groups: Int
    public let weights: [Float]
    public let bias: [Float]?
    public let relu6: Bool

    /// The output clamp: [0, 6] with ReLU6, none otherwise.
    var clamp: (lo: Float, hi: Float) { outputClamp(relu6: relu6) }

    /// Calls `body` with the bias's address, or nil when the layer has none.
    func withBias<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        guard let bias else { return try body(nil) }
        return try bias.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
}

/// The clamp that fuses ReLU6 into a layer's output: [0, 6], or none.
func outputClamp(relu6: Bool) -> (lo: Float, hi: Float) { relu6 ? (0, 6) : (-.infinity, .infinity) }

/// What the graph builder reads of a model's layers.
struct ModelLayers {
    let table: Architecture.LayerTable
    /// Indexed as `table.convs` and `table.scales`.
    let convs: [FoldedConv]
    let scales: [[Float]]
}

/// Immutable, shareable weights of one network: everything a `ModelReplica` needs to pack its
/// operators. BatchNorm is folded here, once, at load.
public final class Model: Sendable {
    public let architecture: Architecture
    public let info: ModelInfo
    /// The network's layers (names, kinds, roles); graph steps hold indices into `convs` and `scales`.
    let layers: Architecture.LayerTable
    /// Folded convolutions, indexed as `layers.convs`.
    let convs: [FoldedConv]
    /// Per-channel scales of the depthwise 1x1 layers (crp1 stages, pre_* heads), indexed as `layers.scales`.
    let scales: [[Float]]
    /// The network as steps over tensors, built once here for every replica; `fusedGraph` with the
    /// residual adds fused into the 1x1 convolutions, for bf16 and int8 replicas.
    let graph: Graph
    let fusedGraph: Graph
    /// The first replica's packed weights, reused by later replicas.
    let packedWeights: SharedPackedWeights
    /// The engine switches this model was built with (A/B measurements; the defaults otherwise).
    public let options: EngineOptions
    /// Whether replicas after the first reuse its packed weights (the options allow it and XNNPACK
    /// allocates through Hydra).
    public var sharesPackedWeights: Bool { packedWeights.enabled }
    /// bf16 (and later int8) packings of the weights, made on first use and shared by replicas.
    let reducedWeights = ReducedPrecisionWeights()

    public static let batchNormEpsilon = 1e-5

    /// Bytes of the folded weights (a model holds them once; packing for XNNPACK adds about as much again).
    public var weightBytes: Int {
        convs.reduce(0) { $0 + ($1.weights.count + ($1.bias?.count ?? 0)) * 4 } + scales.reduce(0) { $0 + $1.count * 4 }
    }

    /// Loads and validates parameters; every official name must be present with its shape.
    public init(source: ParameterSource, info: ModelInfo, options: EngineOptions = EngineOptions()) throws {
        self.options = options
        packedWeights = SharedPackedWeights(enabled: options.sharePackedWeights)
        let shapes = source.parameterShapes
        let arch = try Architecture.infer(shapes: shapes)
        try arch.validate(shapes)
        architecture = arch
        self.info = info
        guard info.classNames.count == arch.numClasses, info.colours.count == arch.numClasses else {
            throw EngineError.invalidWeights("metadata lists \(info.classNames.count) class names and \(info.colours.count) "
                + "colours but the network has \(arch.numClasses) classes")
        }
        try info.validate()

        // Every layer of the table, folded; the graph refers to them by their index in it.
        let table = arch.layers
        var convs: [FoldedConv] = []
        for layer in table.convs {
            let name = layer.name
            switch layer.kind {
            case let .convBN(stride, depthwise, relu6):
                let wName = "\(name).0.weight"
                let shape = layer.shape
                let cout = shape[0], k = shape[2]
                let cin = depthwise ? cout : shape[1]
                let w = try source.values(wName)
                let gamma = try source.values("\(name).1.weight"), beta = try source.values("\(name).1.bias")
                let mean = try source.values("\(name).1.running_mean"), variance = try source.values("\(name).1.running_var")
                var folded = Self.toXNNPACK(w, cout: cout, cinPerGroup: depthwise ? 1 : cin, k: k)
                var bias = [Float](repeating: 0, count: cout)
                let per = folded.count / cout
                for o in 0..<cout {
                    let inv = Double(gamma[o]) / (Double(variance[o]) + Self.batchNormEpsilon).squareRoot()
                    for j in 0..<per { folded[o * per + j] = Float(Double(folded[o * per + j]) * inv) }
                    bias[o] = Float(Double(beta[o]) - Double(mean[o]) * inv)
                }
                convs.append(FoldedConv(name: name, inputChannels: cin, outputChannels: cout, kernel: k, stride: stride,
                                        groups: depthwise ? cout : 1, weights: folded, bias: bias, relu6: relu6))
            case let .conv(withBias):
                let shape = layer.shape
                let cout = shape[0], cin = shape[1], k = shape[2]
                let w = Self.toXNNPACK(try source.values("\(name).weight"), cout: cout, cinPerGroup: cin, k: k)
                convs.append(FoldedConv(name: name, inputChannels: cin, outputChannels: cout, kernel: k, stride: 1, groups: 1,
                                        weights: w, bias: withBias ? try source.values("\(name).bias") : nil, relu6: false))
            case .scale:
                preconditionFailure("scales are listed apart")
            }
        }
        let scales = try table.scales.map { try source.values("\($0.name).weight") }
        for (layer, values) in zip(table.scales, scales) where !values.allSatisfy(\.isFinite) {
            throw EngineError.invalidWeights("parameter \(layer.name) holds NaN or infinite values")
        }
        for c in convs where !(c.weights.allSatisfy(\.isFinite) && (c.bias ?? []).allSatisfy(\.isFinite)) {
            throw EngineError.invalidWeights("parameters of \(c.name) hold NaN or infinite values (after BatchNorm folding)")
        }
        self.layers = table
        self.convs = convs
        self.scales = scales
        graph = Graph(layers: ModelLayers(table: table, convs: convs, scales: scales), options: options)
        fusedGraph = graph.fusingResidualAdds(convs).fusingResizeIntoChain(convs)
    }

    /// The same weights with other metadata (a calibration added) or other engine options: shares
    /// the folded layers (and the graph when the options are the same), not the packed caches.
    public init(_ model: Model, info: ModelInfo? = nil, options: EngineOptions? = nil) throws {
        let info = info ?? model.info
        try info.validate()
        architecture = model.architecture
        self.info = info
        convs = model.convs
        scales = model.scales
        layers = model.layers
        self.options = options ?? model.options
        packedWeights = SharedPackedWeights(enabled: self.options.sharePackedWeights)
        if self.options == model.options {
            graph = model.graph
            fusedGraph = model.fusedGraph
        } else {
            graph = Graph(layers: ModelLayers(table: layers, convs: convs, scales: scales), options: self.options)
            fusedGraph = graph.fusingResidualAdds(convs).fusingResizeIntoChain(convs)
        }
    }

    /// Loads a safetensors file written by `hydra convert` (or any file with the official names);
    /// `metadata`, when given, is read instead of the file's.
    public convenience init(safetensors file: SafeTensorsFile, metadata: [String: String]? = nil) throws {
        let shapes = file.parameterShapes
        let arch = try Architecture.infer(shapes: shapes)
        let fallback = Preset.forClassCount(arch.numClasses) ?? .kitti
        let metadata = metadata ?? file.metadata
        var info = try ModelInfo(metadata: metadata, fallbackPreset: fallback)
        if metadata["classes"] == nil, Preset.forClassCount(arch.numClasses) == nil {
            info.classNames = (0..<arch.numClasses).map { "class \($0)" }
            info.colours = (0..<arch.numClasses).map { Preset.vocColour($0 + 1) }
        }
        try self.init(source: file, info: info)
    }

    /// PyTorch [out][in/groups][kh][kw] to XNNPACK [out][kh][kw][in/groups].
    static func toXNNPACK(_ w: [Float], cout: Int, cinPerGroup: Int, k: Int) -> [Float] {
        if k == 1 || cinPerGroup == 1 { return w }
        var out = [Float](repeating: 0, count: w.count)
        for o in 0..<cout {
            for i in 0..<cinPerGroup {
                for y in 0..<k {
                    for x in 0..<k {
                        out[((o * k + y) * k + x) * cinPerGroup + i] = w[((o * cinPerGroup + i) * k + y) * k + x]
                    }
                }
            }
        }
        return out
    }
}
