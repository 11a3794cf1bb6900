import HydraWeights

/// Which layers an `.int8` replica runs in int8 (VNNI), with the quantization of each one's input
/// from the model's calibration: the 1x1 convolutions (`hydra_conv1x1_int8`, which quantizes its
/// input as it reads it) and the 3x3 heads (`hydra_head3x3_int8`, on a u8 input the crp1 chain
/// writes). Everything else runs as in a bf16 replica (`BF16Plan`: its tensors stay bf16 or f32 as
/// there). A layer runs in int8 when the calibration has its input range and does not keep it in
/// bf16 (its per-layer sensitivity).
struct Int8Plan {
    struct Step {
        let weights: Int8Weights
        let scale: Float, zero: Int32
    }

    /// 1x1 convolutions and 3x3 heads run in int8, by step.
    private(set) var steps: [Int: Step] = [:]
    /// Tensors stored as u8 (zero point 0), with their scale: the inputs of int8 heads, written by the
    /// crp1 chain.
    private(set) var u8Tensors: [Int: Float] = [:]

    /// `layers`, when given, replaces the calibration's choice (per-layer sensitivity measures one at a time).
    init(graph: Graph, model: Model, calibration: Int8Calibration, layers: Set<String>? = nil) {
        for (i, step) in graph.steps.enumerated() {
            guard let name = Self.layer(step, graph, model), let q = calibration.quantization(of: name),
                  layers?.contains(name) ?? !calibration.keep.contains(name) else { continue }
            if case let .head(_, x, _) = step {
                guard q.zero == 0 else { continue } // a ReLU6 output: zero and the padding are the same value
                steps[i] = Step(weights: model.reducedWeights.int8Head(model.convs[name]!), scale: q.scale, zero: 0)
                u8Tensors[x] = q.scale
            } else {
                steps[i] = Step(weights: model.reducedWeights.int8(model.convs[name]!), scale: q.scale, zero: q.zero)
            }
        }
    }

    /// The layer a step would run in int8: a dense 1x1 convolution, or a 3x3 head (channels a multiple
    /// of 64) whose input the crp1 chain writes for it alone.
    static func layer(_ step: Graph.Step, _ graph: Graph, _ model: Model) -> String? {
        if let name = step.convolution, model.convs[name]!.isDense1x1 { return name }
        guard case let .head(name, x, _) = step, model.convs[name]!.inputChannels % 64 == 0 else { return nil }
        let writers = graph.steps.filter { $0.outputs.contains(x) }, readers = graph.steps.filter { $0.inputs.contains(x) }
        guard writers.count == 1, case .crpChain = writers[0], readers.count == 1 else { return nil }
        return name
    }

    /// The layers int8 can run (the calibration measures their inputs).
    static func candidates(_ model: Model) -> [String] {
        model.graph.steps.compactMap { layer($0, model.graph, model) }
    }
}

extension Graph.Step {
    /// The layer a convolution step runs (with or without a fused add).
    var convolution: String? {
        switch self {
        case let .conv(name, _, _), let .convAdd(name, _, _, _, _, _): return name
        default: return nil
        }
    }
}

extension FoldedConv {
    /// A dense 1x1 convolution the reduced-precision GEMMs take (at most 4096 inputs).
    var isDense1x1: Bool { kernel == 1 && stride == 1 && groups == 1 && inputChannels <= 4096 }
}
