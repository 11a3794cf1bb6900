import HydraWeights

/// The built-in model: weights generated from a fixed seed, so the product runs out of the box
/// with nothing downloaded. It is UNTRAINED: its outputs are structured noise, not perception.
/// Convert the authors' published checkpoints (`hydra convert`) for real results.
public enum DefaultModel {
    public static let seed: UInt64 = 0x4859_4452_4120_0001
    public static let description = "UNTRAINED built-in default: weights generated from a fixed seed "
        + "(He-initialised convolutions, BatchNorm statistics drawn near identity); outputs are not meaningful. "
        + "Convert the authors' checkpoints with `hydra convert` for real predictions."

    public static func parameters(architecture: Architecture = Architecture(numClasses: 6, hasNormals: false),
                                  seed: UInt64 = seed) -> ParameterDictionary {
        var rng = SplitMix64(seed: seed)
        var entries: [String: (shape: [Int], values: [Float])] = [:]
        for (name, shape) in architecture.parameters {
            let n = shape.reduce(1, *)
            var v = [Float](repeating: 0, count: n)
            if name.hasSuffix(".running_var") {
                for i in 0..<n { v[i] = Float(0.5 + rng.unit()) }
            } else if name.hasSuffix(".running_mean") || name.hasSuffix("bias") {
                for i in 0..<n { v[i] = Float(rng.unit() * 0.2 - 0.1) }
            } else if shape.count == 1 { // BatchNorm gamma
                for i in 0..<n { v[i] = Float(0.75 + rng.unit() * 0.5) }
            } else {
                // He-uniform on fan-in; per-channel scales (x1x1x1) stay near 1.
                let fanIn = shape.dropFirst().reduce(1, *)
                let bound = fanIn == 1 ? 0.5 : (6.0 / Double(fanIn)).squareRoot()
                let centre = fanIn == 1 ? 1.0 : 0.0
                for i in 0..<n { v[i] = Float(centre + (rng.unit() * 2 - 1) * bound) }
            }
            entries[name] = (shape, v)
        }
        return ParameterDictionary(entries)
    }

    public static func info() -> ModelInfo {
        ModelInfo(preset: .kitti, description: description, trained: false)
    }

    /// The built-in model, ready to replicate.
    public static func load() throws -> Model {
        try Model(source: parameters(), info: info())
    }
}

/// A small, fast, well-distributed PRNG (Steele et al.), so generated weights are the same everywhere.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
