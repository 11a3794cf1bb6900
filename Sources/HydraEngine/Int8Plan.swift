import HydraWeights

/// Which layers an `.int8` replica runs in int8 (VNNI), with the quantization of each one's input
/// from the model's calibration: the 1x1 convolutions (`hydra_conv1x1_int8`, which quantizes its
/// input as it reads it, or reads it as u8) and the 3x3 heads (`hydra_head3x3_int8`, on a u8 input
/// the crp1 chain writes). Everything else runs as in a bf16 replica (`BF16Plan`: its tensors stay
/// bf16 or f32 as there), except the crp2-4 pools in front of int8 convolutions, which pool u8
/// tensors in the convolution's input quantization. A layer runs in int8 when the calibration has
/// its input range and does not keep it in bf16 (its per-layer sensitivity).
struct Int8Plan {
    /// A per-tensor quantization: value = scale * (q - zero).
    struct Quantization: Equatable {
        let scale: Float, zero: Int32
    }

    struct Step {
        let weights: Int8Weights
        let input: Quantization
    }

    /// 1x1 convolutions and 3x3 heads run in int8, by step.
    private(set) var steps: [Int: Step] = [:]
    /// Tensors stored as u8, with their quantization: the inputs of int8 heads (zero point 0, written
    /// by the crp1 chain), and around each crp2-4 pool before an int8 convolution the pooled tensor and,
    /// where a fused convolution writes the pool's input as its raw copy for the pool alone, that copy.
    /// Quantizing is monotone, so a max of quantized values is the quantized max: the convolution sees
    /// the bytes it would have made from the f32 pool.
    private(set) var u8Tensors: [Int: Quantization] = [:]

    /// `layers`, when given, replaces the calibration's choice (per-layer sensitivity measures one at a time).
    init(graph: Graph, model: Model, calibration: Int8Calibration, layers: Set<String>? = nil) {
        for (i, step) in graph.steps.enumerated() {
            guard let layer = Self.layerIndex(step, graph, model), case let name = model.convs[layer].name,
                  let q = calibration.quantization(of: name), layers?.contains(name) ?? !calibration.keep.contains(name) else { continue }
            let input = Quantization(scale: q.scale, zero: q.zero)
            if case let .head(_, x, _) = step {
                guard q.zero == 0 else { continue } // a ReLU6 output: zero and the padding are the same value
                steps[i] = Step(weights: model.reducedWeights.int8Head(model.convs[layer]), input: input)
                u8Tensors[x] = input
            } else {
                steps[i] = Step(weights: model.reducedWeights.int8(model.convs[layer]), input: input)
            }
        }
        let all = graph.steps
        func readers(_ t: Int) -> [Int] { all.indices.filter { all[$0].inputs.contains(t) } }
        for step in all {
            guard case let .maxPool5(x, pooled) = step, graph.channels[x] % 16 == 0, readers(pooled).count == 1,
                  let q = steps[readers(pooled)[0]]?.input else { continue }
            u8Tensors[pooled] = q
            let writtenAsRaw = all.contains { if case let .convAdd(_, _, _, _, _, raw) = $0 { raw == x } else { false } }
            if writtenAsRaw, readers(x).count == 1 { u8Tensors[x] = q }
        }
    }

    /// The first layer's and the depthwise layers' outputs read only by an int8 convolution are written
    /// as u8 in that convolution's quantization by the kernel that makes them (from its f32 result),
    /// where they would be rounded to bf16 (`bf16`'s plan) and quantized by the convolution: half the
    /// bytes written and read, no quantizing pass, and one rounding less.
    mutating func quantizeOutputs(_ graph: Graph, _ bf16: inout BF16Plan) {
        let all = graph.steps
        for (i, step) in all.enumerated() {
            let t: Int
            switch step {
            case let .stem(_, out): t = out
            case let .depthwise(_, _, x, out) where bf16.tensors.contains(x): t = out
            default: continue
            }
            let readers = all.indices.filter { all[$0].inputs.contains(t) }
            guard bf16.tensors.contains(t), graph.channels[t] % 16 == 0, readers.count == 1, readers[0] > i,
                  let q = steps[readers[0]]?.input, all[readers[0]].convolution != nil else { continue }
            u8Tensors[t] = q
            bf16.narrow(t)
        }
    }

    /// The layer a step would run in int8: a dense 1x1 convolution, or a 3x3 head (channels a multiple
    /// of 64) whose input the crp1 chain writes for it alone.
    static func layerIndex(_ step: Graph.Step, _ graph: Graph, _ model: Model) -> Int? {
        if let layer = step.convolution, model.convs[layer].isDense1x1 { return layer }
        guard case let .head(layer, x, _) = step, model.convs[layer].inputChannels % 64 == 0 else { return nil }
        let writers = graph.steps.filter { $0.outputs.contains(x) }, readers = graph.steps.filter { $0.inputs.contains(x) }
        guard writers.count == 1, case .crpChain = writers[0], readers.count == 1 else { return nil }
        return layer
    }

    /// The same layer by name (what calibrations are keyed by).
    static func layer(_ step: Graph.Step, _ graph: Graph, _ model: Model) -> String? {
        layerIndex(step, graph, model).map { model.convs[$0].name }
    }

    /// The layers int8 can run (the calibration measures their inputs).
    static func candidates(_ model: Model) -> [String] {
        model.graph.steps.compactMap { layer($0, model.graph, model) }
    }
}

extension Graph.Step {
    /// The layer a convolution step runs (with or without a fused add).
    var convolution: Int? {
        switch self {
        case let .conv(layer, _, _), let .convAdd(layer, _, _, _, _, _): return layer
        default: return nil
        }
    }
}

extension FoldedConv {
    /// A dense 1x1 convolution the reduced-precision GEMMs take (at most 4096 inputs).
    var isDense1x1: Bool { kernel == 1 && stride == 1 && groups == 1 && inputChannels <= 4096 }
}
