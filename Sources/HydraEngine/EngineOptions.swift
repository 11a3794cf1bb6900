/// The engine's switches for A/B measurements (`hydra bench --xnnpack ... --private-weights`) and
/// tests: which layers run on Hydra's own kernels instead of XNNPACK's, and whether later replicas
/// share the first one's packed weights. The defaults are what the service runs.
public struct EngineOptions: Sendable, Equatable {
    /// Depthwise 3x3 layers on `hydra_depthwise3x3` (else XNNPACK's convolution).
    public var ownDepthwise = true
    /// The first layer on `hydra_stem_conv3x3s2_rgb8`, reading the 8-bit image (else preprocessing, then XNNPACK).
    public var ownStem = true
    /// The 3x3 heads on `hydra_conv3x3_small` (else XNNPACK, which pads the outputs to 16).
    public var ownHeads = true
    /// Replicas after the first reuse its packed weights (`SharedPackedWeights`).
    public var sharePackedWeights = true

    public init(ownDepthwise: Bool = true, ownStem: Bool = true, ownHeads: Bool = true, sharePackedWeights: Bool = true) {
        self.ownDepthwise = ownDepthwise
        self.ownStem = ownStem
        self.ownHeads = ownHeads
        self.sharePackedWeights = sharePackedWeights
    }
}
