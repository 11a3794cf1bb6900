import HydraWeights

/// int8 calibration (`hydra calibrate`): the f32 network measures the input range of every 1x1
/// convolution over a set of frames; then each layer's cost in accuracy when it alone runs in int8
/// (its sensitivity), and the layers kept in bf16 until the whole int8 network is close enough to f32.
public enum Calibration {
    /// One calibration image: 8-bit RGB, interleaved.
    public struct Frame: Sendable {
        public let pixels: [UInt8]
        public let width: Int, height: Int
        public init(pixels: [UInt8], width: Int, height: Int) {
            precondition(pixels.count == width * height * 3)
            self.pixels = pixels
            self.width = width
            self.height = height
        }
    }

    /// How close a run is to f32, over frames at the network's resolution.
    public struct Agreement: Sendable, Codable, Equatable {
        /// Fraction of pixels whose most likely class is f32's.
        public var labels: Double
        /// Mean of |depth - f32 depth| / |f32 depth|.
        public var depthRelativeError: Double
    }

    /// One layer's sensitivity: the agreement when only it runs in int8.
    public struct LayerSensitivity: Sendable, Codable {
        public let layer: String
        /// Its share of the multiply-adds of the layers int8 can run.
        public let multiplyAddShare: Double
        public let agreement: Agreement
    }

    public struct Result: Sendable {
        public let calibration: Int8Calibration
        /// Most sensitive first.
        public let layers: [LayerSensitivity]
        /// No layer in int8 (the bf16 network: what each layer's sensitivity adds to), all candidate
        /// layers in int8, and the chosen mix (`calibration.keep` in bf16).
        public let noneInt8: Agreement, allInt8: Agreement, chosen: Agreement
    }

    /// What int8 may cost on the calibration frames beyond what the bf16 network (no layer in int8)
    /// already loses against f32: label agreement lost, depth relative error added. Relative to bf16,
    /// because keeping layers in bf16 cannot do better than bf16.
    public struct Targets: Sendable {
        public var labelLoss: Double, depthError: Double
        public init(labelLoss: Double = 0.005, depthError: Double = 0.0075) {
            self.labelLoss = labelLoss
            self.depthError = depthError
        }
        func met(_ a: Agreement, over base: Agreement) -> Bool {
            base.labels - a.labels <= labelLoss && a.depthRelativeError - base.depthRelativeError <= depthError
        }
        /// How far over the allowance, as a multiple of it (the larger of the two).
        func cost(_ a: Agreement, over base: Agreement) -> Double {
            max((base.labels - a.labels) / max(labelLoss, 1e-9), (a.depthRelativeError - base.depthRelativeError) / max(depthError, 1e-9))
        }
    }

    /// Measures ranges, then sensitivities, then keeps the most sensitive layers in bf16 one at a
    /// time until `targets` are met on the frames (or every layer is kept). `progress` is told what runs.
    public static func calibrate(model: Model, frames: [Frame], threads: Int, targets: Targets = Targets(),
                                 progress: (String) -> Void = { _ in }) throws -> Result {
        precondition(!frames.isEmpty)
        if let reason = Precision.int8.unsupportedReason { throw EngineError.unsupported("--precision int8: \(reason)") }
        progress("f32 ranges on \(frames.count) frames")
        var ranges: [String: [Float]] = [:]
        let f32 = try ModelReplica(model: model, threads: threads, precision: .f32)
        f32.observeConvInput = { name, values in
            var lo = ranges[name]?[0] ?? .infinity, hi = ranges[name]?[1] ?? -.infinity
            for v in values {
                lo = min(lo, v)
                hi = max(hi, v)
            }
            ranges[name] = [lo, hi]
        }
        let reference = try frames.map { try run(f32, $0) }
        var calibration = Int8Calibration(images: frames.count, inputRanges: ranges)
        let calibrated = try Model(model, info: { var i = model.info; i.int8 = calibration; return i }())

        func agreement(_ layers: Set<String>) throws -> Agreement {
            let replica = try ModelReplica(model: calibrated, threads: threads, precision: .int8, int8Layers: layers)
            var sum = Agreement(labels: 0, depthRelativeError: 0)
            for (frame, ref) in zip(frames, reference) {
                let a = compare(try run(replica, frame), ref)
                sum.labels += a.labels / Double(frames.count)
                sum.depthRelativeError += a.depthRelativeError / Double(frames.count)
            }
            return sum
        }
        let candidates = Int8Plan.candidates(calibrated)
        let macs = Dictionary(uniqueKeysWithValues: candidates.map { ($0, multiplyAdds(calibrated, $0)) })
        let totalMacs = macs.values.reduce(0, +)
        progress("no layer in int8")
        let none = try agreement([])
        var layers: [LayerSensitivity] = []
        for (n, name) in candidates.enumerated() {
            progress("sensitivity \(n + 1)/\(candidates.count): \(name)")
            layers.append(LayerSensitivity(layer: name, multiplyAddShare: macs[name]! / totalMacs, agreement: try agreement([name])))
        }
        // Most sensitive first: the larger of the two losses over bf16, each relative to what the targets allow.
        layers.sort { targets.cost($0.agreement, over: none) > targets.cost($1.agreement, over: none) }
        progress("all \(candidates.count) layers in int8")
        let all = try agreement(Set(candidates))
        var chosen = all, keep: [String] = []
        for l in layers where !targets.met(chosen, over: none) {
            keep.append(l.layer)
            progress("keeping \(keep.count) layer(s) in bf16: \(l.layer)")
            chosen = try agreement(Set(candidates).subtracting(keep))
        }
        calibration.keep = keep
        return Result(calibration: calibration, layers: layers, noneInt8: none, allInt8: all, chosen: chosen)
    }

    private static func run(_ replica: ModelReplica, _ frame: Frame) throws -> Prediction {
        try frame.pixels.withUnsafeBufferPointer { try replica.run(rgb: $0, width: frame.width, height: frame.height) }
    }

    /// Label agreement and depth relative error of `p` against `reference` (same size).
    public static func compare(_ p: Prediction, _ reference: Prediction) -> Agreement {
        let n = p.height * p.width, k = p.numClasses
        func argmax(_ logits: [Float], _ i: Int) -> Int {
            var best = 0
            for c in 1..<k where logits[c * n + i] > logits[best * n + i] { best = c }
            return best
        }
        var same = 0, rel = 0.0
        for i in 0..<n {
            if k == 1 || argmax(p.logits, i) == argmax(reference.logits, i) { same += 1 }
            rel += Double(abs(p.depth[i] - reference.depth[i])) / Double(max(abs(reference.depth[i]), 1e-3))
        }
        return Agreement(labels: Double(same) / Double(n), depthRelativeError: rel / Double(n))
    }

    /// Multiply-adds of a layer on a KITTI-sized frame (for the share of each layer).
    private static func multiplyAdds(_ model: Model, _ name: String) -> Double {
        let shapes = model.graph.shapes(height: 384, width: 1248, model: model)
        for step in model.graph.steps {
            guard let layer = Int8Plan.layerIndex(step, model.graph, model), model.convs[layer].name == name else { continue }
            let c = model.convs[layer], x = step.inputs[0]
            return Double(shapes[x].h * shapes[x].w) * Double(c.kernel * c.kernel * c.inputChannels * c.outputChannels)
        }
        return 0
    }
}
