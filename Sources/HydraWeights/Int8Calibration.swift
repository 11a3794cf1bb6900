/// What `hydra calibrate` measures for int8 and stores in a weights file's metadata (key `int8`):
/// the range of each 1x1 convolution's input over the calibration images, and the layers that
/// stay in bf16 because int8 costs them too much accuracy.
public struct Int8Calibration: Codable, Sendable, Equatable {
    /// How many images the ranges were measured on.
    public var images: Int
    /// "min-max": the smallest and largest value seen in each layer's input.
    public var method: String
    /// Per layer (official name of a 1x1 convolution), [lowest, highest] value of its input.
    public var inputRanges: [String: [Float]]
    /// Layers run in bf16 although they have a range (chosen by per-layer sensitivity).
    public var keep: [String]

    public init(images: Int, method: String = "min-max", inputRanges: [String: [Float]], keep: [String] = []) {
        self.images = images
        self.method = method
        self.inputRanges = inputRanges
        self.keep = keep
    }

    /// The u8 quantization of a layer's input: scale and zero point of a range widened to hold 0
    /// (so that zero, the padding and ReLU floor, is exact); nil for a layer without a range.
    public func quantization(of layer: String) -> (scale: Float, zero: Int32)? {
        guard let r = inputRanges[layer] else { return nil }
        let lo = Double(min(r[0], 0)), hi = Double(max(r[1], 0))
        guard hi > lo else { return (1, 0) }
        let scale = (hi - lo) / 255
        return (Float(scale), Int32(min(255, max(0, (-lo / scale).rounded()))))
    }

    func validate() throws {
        func bad(_ why: String) -> WeightsError { .invalidSafetensors("metadata int8: \(why)") }
        guard images > 0 else { throw bad("measured on \(images) images") }
        for (name, r) in inputRanges {
            guard r.count == 2, r[0].isFinite, r[1].isFinite, r[0] <= r[1], abs(r[0]) < 1e30, abs(r[1]) < 1e30 else {
                throw bad("the range of \(name.prefix(80)) must be [low, high] with finite low <= high")
            }
        }
    }
}
