import HydraWeights

/// Which 1x1 convolutions an `.int8` replica runs in int8 (`hydra_conv1x1_int8`, VNNI), with the
/// quantization of each one's input from the model's calibration. Everything else runs as in a
/// bf16 replica (`BF16Plan`: its tensors stay bf16 or f32 as there), so int8 changes only the
/// arithmetic of the layers that hold most of the multiply-adds. A layer runs in int8 when the
/// calibration has its input range and does not keep it in bf16 (its per-layer sensitivity).
struct Int8Plan {
    struct Step {
        let weights: Int8Weights
        let scale: Float, zero: Int32
    }

    private(set) var steps: [Int: Step] = [:]

    /// `layers`, when given, replaces the calibration's choice (per-layer sensitivity measures one at a time).
    init(graph: Graph, model: Model, calibration: Int8Calibration, layers: Set<String>? = nil) {
        for (i, step) in graph.steps.enumerated() {
            guard let name = step.convolution, let c = model.convs[name], c.isDense1x1,
                  let q = calibration.quantization(of: name), layers?.contains(name) ?? !calibration.keep.contains(name) else { continue }
            steps[i] = Step(weights: model.reducedWeights.int8(c), scale: q.scale, zero: q.zero)
        }
    }

    /// The layers int8 can run: every 1x1 convolution (the calibration measures their inputs).
    static func candidates(_ model: Model) -> [String] {
        model.graph.steps.compactMap { step in
            guard case let .conv(name, _, _) = step, model.convs[name]!.isDense1x1 else { return nil }
            return name
        }
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
