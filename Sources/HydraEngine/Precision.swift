import Foundation
import HydraKernels

/// The arithmetic a replica runs the network in. f32 is exact against the reference network;
/// bf16 runs the 1x1 convolutions (most of the work) with bfloat16 inputs and weights and f32
/// accumulation on AVX512-BF16, everything else in f32.
public enum Precision: String, CaseIterable, Sendable, LosslessStringConvertible {
    case f32, bf16

    public var description: String { rawValue }
    public init?(_ description: String) { self.init(rawValue: description.lowercased()) }

    /// Nil when this CPU can run it, else why not (a replica refuses to start: nothing falls back silently).
    public var unsupportedReason: String? {
        switch self {
        case .f32: return nil
        case .bf16:
            return hydra_bf16_supported() != 0 ? nil
                : "this CPU has no AVX512-BF16 instructions (avx512_bf16 in /proc/cpuinfo); use --precision f32"
        }
    }
}

/// Weights packed for the reduced-precision kernels, once per model and shared by its replicas
/// (packed when the first replica that needs them is created).
final class ReducedPrecisionWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var bf16: [String: [UInt16]] = [:]

    /// The 1x1 convolution's weights in `hydra_conv1x1_bf16`'s layout.
    func bf16(_ c: FoldedConv) -> [UInt16] {
        cached(c.name) {
            var packed = [UInt16](repeating: 0, count: hydra_bf16_packed_elements(c.inputChannels, c.outputChannels))
            packed.withUnsafeMutableBufferPointer { hydra_bf16_pack_weights(c.weights, c.inputChannels, c.outputChannels, $0.baseAddress) }
            return packed
        }
    }

    /// A 3x3 head's weights ([out][ky][kx][in], as XNNPACK orders them) rounded to bf16.
    func bf16Head(_ c: FoldedConv) -> [UInt16] {
        cached(c.name) { c.weights.map { hydra_bf16_from_float($0) } }
    }

    private func cached(_ name: String, _ make: () -> [UInt16]) -> [UInt16] {
        lock.lock()
        defer { lock.unlock() }
        if let packed = bf16[name] { return packed }
        let packed = make()
        bf16[name] = packed
        return packed
    }
}
