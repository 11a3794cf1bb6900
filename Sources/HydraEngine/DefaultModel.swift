import HydraWeights

import Foundation

/// The built-in model. The shipped one (`Resources/default.safetensors`, copied beside the binary as
/// `Hydra_HydraEngine.resources/`) was trained by the project on its own generated street scenes
/// (training/). If that file is missing, weights are generated from a fixed seed instead: UNTRAINED,
/// structured noise, so the product still runs. Nothing is downloaded either way.
public enum DefaultModel {
    public static let resourceName = "default.safetensors"

    /// Where the shipped weights are: $HYDRA_DEFAULT_MODEL, or the resource bundle beside the
    /// executable (what `swift build` lays out), or nil.
    public static var shippedPath: String? {
        if let p = ProcessInfo.processInfo.environment["HYDRA_DEFAULT_MODEL"], !p.isEmpty { return p }
        return ResourceBundle.file(in: "Hydra_HydraEngine.resources", ["Resources/\(resourceName)", resourceName])
    }

    /// The int8 calibration shipped beside the weights (`hydra calibrate --calibration-out`): kept
    /// apart so that recalibrating changes a small file, not the 12 MB of weights.
    public static let calibrationName = "default.int8.json"

    /// The built-in model: the shipped trained weights (with their calibration), else the generated untrained ones.
    public static func load() throws -> Model {
        guard let path = shippedPath else { return try untrained() }
        let file = try SafeTensorsFile(path: path)
        var metadata = file.metadata
        let sidecar = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(calibrationName)
        if metadata["int8"] == nil, let data = FileManager.default.contents(atPath: sidecar.path) {
            metadata["int8"] = String(decoding: data, as: UTF8.self)
        }
        return try Model(safetensors: file, metadata: metadata)
    }

    public static let seed: UInt64 = 0x4859_4452_4120_0001
    public static let description = "UNTRAINED: weights generated from a fixed seed "
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

    /// Weights generated from the seed: deterministic, untrained (tests and the fallback).
    public static func untrained() throws -> Model {
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
