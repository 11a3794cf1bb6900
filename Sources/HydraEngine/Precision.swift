import Foundation
import HydraKernels

/// The arithmetic a replica runs the network in. f32 is exact against the reference network;
/// bf16 runs the 1x1 convolutions (most of the work), the depthwise layers and the heads with
/// bfloat16 values and f32 sums on AVX512-BF16 (`BF16Plan`); int8 runs the 1x1 convolutions and the segmentation head with
/// u8 inputs and s8 weights on AVX512-VNNI and the rest as bf16 does (`Int8Plan`), which needs the
/// model's calibration (`hydra calibrate`).
public enum Precision: String, CaseIterable, Sendable, LosslessStringConvertible {
    case f32, bf16, int8

    public var description: String { rawValue }
    public init?(_ description: String) { self.init(rawValue: description.lowercased()) }

    /// Nil when this CPU can run it, else why not (a replica refuses to start: nothing falls back silently).
    public var unsupportedReason: String? {
        switch self {
        case .f32: return nil
        case .bf16:
            return hydra_bf16_supported() != 0 ? nil
                : "this CPU has no AVX512-BF16 instructions (avx512_bf16 in /proc/cpuinfo); use --precision f32"
        case .int8:
            // The layers int8 leaves out run in bf16, so both are needed (Zen 4, Sapphire Rapids, Cooper Lake).
            return hydra_int8_supported() != 0 ? nil
                : "int8 needs AVX512-VNNI and AVX512-BF16 (avx512_vnni and avx512_bf16 in /proc/cpuinfo; it runs its other "
                + "layers in bf16), which this CPU lacks; use --precision f32"
        }
    }
}

/// Weights packed for the reduced-precision kernels, once per model and shared by its replicas
/// (packed when the first replica that needs them is created).
final class ReducedPrecisionWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var bf16: [String: [UInt16]] = [:]
    private var int8: [String: Int8Weights] = [:]

    /// The 1x1 convolution's weights in `hydra_conv1x1_bf16`'s layout.
    func bf16(_ c: FoldedConv) -> [UInt16] {
        cached(\.bf16, c.name) {
            var packed = [UInt16](repeating: 0, count: hydra_bf16_packed_elements(c.inputChannels, c.outputChannels))
            packed.withUnsafeMutableBufferPointer { hydra_bf16_pack_weights(c.weights, c.inputChannels, c.outputChannels, $0.baseAddress) }
            return packed
        }
    }

    /// A 3x3 head's weights ([out][ky][kx][in], as XNNPACK orders them) rounded to bf16.
    func bf16Head(_ c: FoldedConv) -> [UInt16] {
        cached(\.bf16, c.name) { c.weights.map { hydra_bf16_from_float($0) } }
    }

    /// The 1x1 convolution's weights quantized per output channel for `hydra_conv1x1_int8`.
    func int8(_ c: FoldedConv) -> Int8Weights {
        cached(\.int8, c.name) {
        var w = Int8Weights(packed: [Int8](repeating: 0, count: hydra_int8_packed_bytes(c.inputChannels, c.outputChannels)),
                            scales: [Float](repeating: 0, count: c.outputChannels), columnSums: [Int32](repeating: 0, count: c.outputChannels))
        w.packed.withUnsafeMutableBufferPointer { p in
            w.scales.withUnsafeMutableBufferPointer { s in
                w.columnSums.withUnsafeMutableBufferPointer { sums in
                    hydra_int8_pack_weights(c.weights, c.inputChannels, c.outputChannels, p.baseAddress, s.baseAddress, sums.baseAddress)
                }
            }
        }
        return w
        }
    }

    /// A 3x3 head's weights quantized per output channel for `hydra_head3x3_int8` (no column sums:
    /// its input has zero point 0).
    func int8Head(_ c: FoldedConv) -> Int8Weights {
        cached(\.int8, c.name) {
        var w = Int8Weights(packed: [Int8](repeating: 0, count: c.weights.count), scales: [Float](repeating: 0, count: c.outputChannels),
                            columnSums: [])
        w.packed.withUnsafeMutableBufferPointer { p in
            w.scales.withUnsafeMutableBufferPointer { s in hydra_int8_pack_head(c.weights, c.inputChannels, c.outputChannels, p.baseAddress, s.baseAddress) }
        }
        return w
        }
    }

    /// One locked lookup per packing: made on first use, then shared.
    private func cached<T>(_ table: ReferenceWritableKeyPath<ReducedPrecisionWeights, [String: T]>, _ name: String,
                           _ make: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        if let packed = self[keyPath: table][name] { return packed }
        let packed = make()
        self[keyPath: table][name] = packed
        return packed
    }
}

/// A 1x1 convolution's weights for `hydra_conv1x1_int8`: packed s8, per-channel scales, sums of each channel's s8 values.
struct Int8Weights: Sendable {
    var packed: [Int8]
    var scales: [Float]
    var columnSums: [Int32]
}
