import HydraWeights

/// A JSON summary of one prediction: what ran, how long each stage took, and per class its
/// share of the image and how far away it is ("the nearest car is 7.4 m away").
public struct Summary: Codable, Sendable {
    public struct Size: Codable, Sendable {
        public var width: Int, height: Int
        public init(width: Int, height: Int) { self.width = width; self.height = height }
    }
    public struct ClassStats: Codable, Sendable {
        public var id: Int
        public var name: String
        public var colour: [UInt8]
        /// Fraction of the image's pixels.
        public var share: Double
        public var pixels: Int
        public var depthMinM: Float?
        public var depthMedianM: Float?

        enum CodingKeys: String, CodingKey {
            case id, name, colour, share, pixels, depthMinM = "depth_min_m", depthMedianM = "depth_median_m"
        }
    }
    public struct Camera: Codable, Sendable {
        public var fx: Double, fy: Double, cx: Double, cy: Double
        public var source: String
    }

    public var model: String
    public var modelDescription: String
    public var preset: String
    public var trained: Bool
    public var input: Size
    /// The size the network ran at: the input's, unless the frame was shrunk to fit the service's limit.
    public var networkInput: Size
    /// Resolution the network computed at (a quarter of its input).
    public var networkOutput: Size
    /// Anything a reader should know about how this result was made (a shrunk frame, ...).
    public var note: String?
    public var upsampling: String
    /// Milliseconds per stage, in order of execution.
    public var timingsMs: [String: Double]
    public var classes: [ClassStats]
    public var depthMinM: Float?
    public var depthMedianM: Float?
    public var depthMaxM: Float?
    public var camera: Camera?
    public var points: Int?
    public var depthColourRangeM: [Float]?
    /// Where round distances fall on the colour depth picture (what a legend shows).
    public var depthColourLegend: [LegendTick]?

    public struct LegendTick: Codable, Sendable {
        public var metres: Float
        /// 0 at the far end of the map, 1 at the near end.
        public var position: Float
        public var rgb: [UInt8]
    }

    enum CodingKeys: String, CodingKey {
        case model, modelDescription = "model_description", preset, trained, input, note
        case networkInput = "network_input", networkOutput = "network_output", upsampling, timingsMs = "timings_ms", classes
        case depthMinM = "depth_min_m", depthMedianM = "depth_median_m", depthMaxM = "depth_max_m"
        case camera, points, depthColourRangeM = "depth_colour_range_m", depthColourLegend = "depth_colour_legend"
    }

    /// Per-class pixel counts and depth statistics over the full-resolution outputs.
    public static func classStats(_ d: DenseOutputs, info: ModelInfo) -> (classes: [ClassStats], all: (Float, Float, Float)?) {
        let n = info.classNames.count
        var byClass = [[Float]](repeating: [], count: n)
        var counts = [Int](repeating: 0, count: n)
        for i in d.labels.indices {
            let c = Int(d.labels[i])
            counts[c] += 1
            let z = d.depth[i]
            if z.isFinite, z > 0 { byClass[c].append(z) }
        }
        let total = Double(d.labels.count)
        var classes: [ClassStats] = []
        var everything: [Float] = []
        everything.reserveCapacity(d.depth.count)
        for c in 0..<n {
            var s = ClassStats(id: c, name: info.classNames[c], colour: info.colours[c], share: Double(counts[c]) / total,
                               pixels: counts[c])
            if !byClass[c].isEmpty {
                everything += byClass[c]
                s.depthMinM = byClass[c].min()
                s.depthMedianM = Statistics.select(&byClass[c], rank: (byClass[c].count - 1) / 2)
            }
            classes.append(s)
        }
        guard !everything.isEmpty else { return (classes, nil) }
        let lo = everything.min()!, hi = everything.max()!
        let median = Statistics.select(&everything, rank: (everything.count - 1) / 2)
        return (classes, (lo, median, hi))
    }
}
