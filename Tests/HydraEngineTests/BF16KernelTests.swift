import CXNNPACK
import HydraKernels
import XCTest

final class BF16KernelTests: XCTestCase {
    func testConversionRoundsToNearestEvenAndFlushesDenormals() {
        func bf16(_ bits: UInt32) -> UInt16 { hydra_bf16_from_float(Float(bitPattern: bits)) }
        XCTAssertEqual(hydra_bf16_from_float(1), 0x3F80)
        XCTAssertEqual(hydra_bf16_from_float(-2), 0xC000)
        XCTAssertEqual(bf16(0x3F80_7FFF), 0x3F80)  // below half: down
        XCTAssertEqual(bf16(0x3F80_8000), 0x3F80)  // half, even below: stays
        XCTAssertEqual(bf16(0x3F81_8000), 0x3F82)  // half, odd below: up to even
        XCTAssertEqual(bf16(0x3F80_8001), 0x3F81)  // above half: up
        XCTAssertEqual(bf16(0x7F7F_FFFF), 0x7F80)  // the largest float rounds to infinity
        XCTAssertEqual(bf16(0x0000_0001), 0x0000)  // denormals become zero, keeping the sign
        XCTAssertEqual(bf16(0x8040_0000), 0x8000)
        XCTAssertEqual(hydra_bf16_from_float(.infinity), 0x7F80)
        XCTAssertEqual(hydra_bf16_from_float(.nan) & 0x7FC0, 0x7FC0)  // stays a (quiet) NaN
        XCTAssertEqual(bf16(0x7F80_0001) & 0x7FC0, 0x7FC0)  // a signalling NaN does not become infinity
    }

    func testPackingPutsKPairsOfEachOutputSideBySide() {
        // 3 inputs, 2 outputs: w[o][i] = 10 o + i; blocks of 32 outputs, k padded to 4.
        let w: [Float] = [0, 1, 2, 10, 11, 12]
        XCTAssertEqual(hydra_bf16_packed_elements(3, 2), 4 * 32)
        var packed = [UInt16](repeating: 0xFFFF, count: 4 * 32)
        hydra_bf16_pack_weights(w, 3, 2, &packed)
        func at(_ k: Int, _ n: Int) -> UInt16 { packed[(k / 2) * 64 + n * 2 + k % 2] }
        XCTAssertEqual([at(0, 0), at(1, 0), at(2, 0), at(3, 0)], [0, hydra_bf16_from_float(1), hydra_bf16_from_float(2), 0])
        XCTAssertEqual([at(0, 1), at(1, 1), at(2, 1)], [10, 11, 12].map { hydra_bf16_from_float($0) })
        XCTAssertEqual(at(0, 2), 0)  // padding outputs are zero
    }

    /// The AVX512-BF16 kernel and the scalar statement of its arithmetic agree bit for bit, for each
    /// layout (f32 or bf16 input and output), at sizes that exercise row panels, k tails (odd, not a
    /// multiple of 32), output tails (under and over 16) and threads.
    func testKernelEqualsScalarReferenceBitForBit() throws {
        try XCTSkipUnless(hydra_bf16_supported() != 0, "this CPU has no AVX512-BF16")
        var rng = SystemRandomNumberGenerator()
        for threads in [1, 3] {
            let pool = pthreadpool_create(threads)
            defer { pthreadpool_destroy(pool) }
            for (m, k, n, relu6, withBias) in [(1, 2, 1, false, false), (7, 3, 17, true, true), (9, 32, 32, false, true),
                                               (70, 96, 24, true, true), (129, 33, 40, false, false), (16, 960, 160, false, true),
                                               (65, 144, 64, true, false), (3, 1, 5, false, true), (20, 32, 16, true, false)] {
                // Values across magnitudes, with cancellation, so the order of the additions matters.
                let x = (0..<(m * k)).map { _ in Float.random(in: -4...4, using: &rng) * (Bool.random(using: &rng) ? 1 : 1e-3) }
                let x16 = x.map { hydra_bf16_from_float($0) }
                let w = (0..<(n * k)).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
                let bias = withBias ? (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } : nil
                var packed = [UInt16](repeating: 0, count: hydra_bf16_packed_elements(k, n))
                hydra_bf16_pack_weights(w, k, n, &packed)
                let (lo, hi): (Float, Float) = relu6 ? (0, 6) : (-.infinity, .infinity)
                for layout in [0, HYDRA_BF16_INPUT, HYDRA_BF16_OUTPUT, HYDRA_BF16_INPUT | HYDRA_BF16_OUTPUT].map(Int32.init) {
                    for residual in ResidualCase.all(m * n, &rng) {
                        let size = layout & Int32(HYDRA_BF16_OUTPUT) != 0 ? 2 : 4
                        let input: [UInt8] = layout & Int32(HYDRA_BF16_INPUT) != 0 ? x16.withUnsafeBytes { Array($0) } : x.withUnsafeBytes { Array($0) }
                        let (got, want) = residual.run(elements: m * n, size: size) { out, res in
                            XCTAssertEqual(bias.withOptionalPointer { b in hydra_conv1x1_bf16(input, m, k, packed, b, n, lo, hi, out, layout, res, pool) }, 0)
                        } reference: { out, res in
                            bias.withOptionalPointer { b in hydra_conv1x1_bf16_reference(input, m, k, packed, b, n, lo, hi, out, layout, res) }
                        }
                        XCTAssertEqual(got, want, "\(m)x\(k)x\(n), layout \(layout), \(residual), \(threads) threads")
                    }
                }
            }
        }
    }

    func testDepthwiseBF16EqualsItsReferenceBitForBit() throws {
        try XCTSkipUnless(hydra_bf16_supported() != 0, "this CPU has no AVX512-BF16")
        var rng = SystemRandomNumberGenerator()
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        var saturated = false
        for (h, w, c, stride) in [(1, 1, 16, 1), (2, 3, 32, 2), (5, 9, 16, 1), (7, 13, 48, 2), (6, 20, 96, 1), (9, 4, 16, 2), (3, 37, 32, 1)] {
            let x = (0..<(h * w * c)).map { _ in hydra_bf16_from_float(Float.random(in: -1...6, using: &rng)) }
            let weights = (0..<(9 * c)).map { _ in Float.random(in: -1...1, using: &rng) }
            let bias = (0..<c).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
            let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1)
            var got = [UInt16](repeating: 0xFFFF, count: oh * ow * c + 16), want = [UInt16](repeating: 0, count: oh * ow * c)
            XCTAssertEqual(hydra_depthwise3x3_bf16(x, h, w, c, stride, weights, bias, 0, 6, &got, pool), 0)
            hydra_depthwise3x3_bf16_reference(x, h, w, c, stride, weights, bias, 0, 6, &want)
            XCTAssertEqual(Array(got.prefix(oh * ow * c)), want, "\(h)x\(w)x\(c) stride \(stride)")
            XCTAssertTrue(got.suffix(16).allSatisfy { $0 == 0xFFFF }, "wrote past the end")
            // To u8 for an int8 projection: the reference's quantization of the clamped sums, some saturating.
            let (scale, zero): (Float, Int32) = (0.02, 17)
            var got8 = [UInt8](repeating: 0xA5, count: oh * ow * c + 16), want8 = [UInt8](repeating: 0, count: oh * ow * c)
            XCTAssertEqual(hydra_depthwise3x3_bf16_u8(x, h, w, c, stride, weights, bias, 0, 6, scale, zero, &got8, pool), 0)
            hydra_depthwise3x3_bf16_u8_reference(x, h, w, c, stride, weights, bias, 0, 6, scale, zero, &want8)
            XCTAssertEqual(Array(got8.prefix(oh * ow * c)), want8, "to u8: \(h)x\(w)x\(c) stride \(stride)")
            XCTAssertTrue(got8.suffix(16).allSatisfy { $0 == 0xA5 }, "wrote past the end")
            saturated = saturated || want8.contains(255)
        }
        XCTAssertTrue(saturated, "the u8 range saturates somewhere")
        var out = [UInt16](repeating: 0, count: 64)
        XCTAssertEqual(hydra_depthwise3x3_bf16([UInt16](repeating: 0, count: 8), 1, 1, 8, 1, [Float](repeating: 0, count: 72), nil, 0, 6, &out, pool), -1)
        XCTAssertEqual(hydra_depthwise3x3_bf16([UInt16](repeating: 0, count: 16), 1, 1, 16, 3, [Float](repeating: 0, count: 144), nil, 0, 6, &out, pool), -1)
    }

    /// The heads' bf16 path: a channel scale that writes bf16, then the 3x3 head on it, each equal bit
    /// for bit to its scalar statement, at sizes with borders, pixel-block tails and 1-9 outputs.
    func testHeadAndScaleToBF16EqualTheirReferencesBitForBit() throws {
        try XCTSkipUnless(hydra_bf16_supported() != 0, "this CPU has no AVX512-BF16")
        var rng = SystemRandomNumberGenerator()
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        for (h, w, c, o) in [(1, 1, 32, 1), (3, 9, 64, 6), (5, 17, 32, 3), (7, 5, 256, 1), (4, 11, 96, 9), (2, 8, 32, 4), (6, 3, 64, 5)] {
            let x = (0..<(h * w * c)).map { _ in Float.random(in: -2...8, using: &rng) }
            let scale = (0..<c).map { _ in Float.random(in: 0...1.5, using: &rng) }
            var got16 = [UInt16](repeating: 0xFFFF, count: h * w * c + 32), want16 = [UInt16](repeating: 0, count: h * w * c)
            XCTAssertEqual(hydra_channel_scale_bf16(x, scale, &got16, h * w, c, 0, 6, pool), 0)
            hydra_channel_scale_bf16_reference(x, scale, &want16, h * w, c, 0, 6)
            XCTAssertEqual(Array(got16.prefix(h * w * c)), want16, "scale \(h)x\(w)x\(c)")
            XCTAssertTrue(got16.suffix(32).allSatisfy { $0 == 0xFFFF }, "wrote past the end")
            let weights = (0..<(o * 9 * c)).map { _ in hydra_bf16_from_float(Float.random(in: -0.2...0.2, using: &rng)) }
            let bias = (0..<o).map { _ in Float.random(in: -1...1, using: &rng) }
            var got = [Float](repeating: .nan, count: h * w * o + 8), want = [Float](repeating: 0, count: h * w * o)
            XCTAssertEqual(hydra_head3x3_bf16(want16, h, w, c, weights, bias, o, &got, pool), 0)
            hydra_head3x3_bf16_reference(want16, h, w, c, weights, bias, o, &want)
            XCTAssertEqual(Array(got.prefix(h * w * o)).map(\.bitPattern), want.map(\.bitPattern), "head \(h)x\(w)x\(c) -> \(o)")
            XCTAssertTrue(got.suffix(8).allSatisfy(\.isNaN), "wrote past the end")
        }
        var out = [Float](repeating: 0, count: 4)
        XCTAssertEqual(hydra_head3x3_bf16([UInt16](repeating: 0, count: 16), 1, 1, 16, [UInt16](repeating: 0, count: 144), nil, 1, &out, pool), -1)
    }

    /// The first layer's bf16 output is exactly its f32 output rounded (the same sums, then the conversion).
    func testStemToBF16IsTheF32StemRounded() throws {
        var rng = SystemRandomNumberGenerator()
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        for (h, w) in [(1, 1), (5, 9), (33, 70)] {
            let rgb = (0..<(h * w * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let weights = (0..<(27 * 32)).map { _ in Float.random(in: -1...1, using: &rng) }
            let bias = (0..<32).map { _ in Float.random(in: -1...1, using: &rng) }
            let n = ((h + 1) / 2) * ((w + 1) / 2) * 32
            var f32 = [Float](repeating: 0, count: n), bf16 = [UInt16](repeating: 0xFFFF, count: n + 16)
            XCTAssertEqual(hydra_stem_conv3x3s2_rgb8(rgb, h, w, mean, std, weights, bias, 32, 0, 6, &f32, pool), 0)
            XCTAssertEqual(hydra_stem_conv3x3s2_rgb8_bf16(rgb, h, w, mean, std, weights, bias, 32, 0, 6, &bf16, pool), 0)
            XCTAssertEqual(Array(bf16.prefix(n)), f32.map { hydra_bf16_from_float($0) }, "\(h)x\(w)")
            XCTAssertTrue(bf16.suffix(16).allSatisfy { $0 == 0xFFFF }, "wrote past the end")
            var u8 = [UInt8](repeating: 0xA5, count: n + 16)
            XCTAssertEqual(hydra_stem_conv3x3s2_rgb8_u8(rgb, h, w, mean, std, weights, bias, 32, 0, 6, 0.01, 3, &u8, pool), 0)
            XCTAssertEqual(Array(u8.prefix(n)), f32.map { hydra_int8_quantize($0, 0.01, 3) }, "\(h)x\(w) to u8")
            XCTAssertTrue(u8.suffix(16).allSatisfy { $0 == 0xA5 }, "wrote past the end")
        }
    }

    /// bf16 is within its rounding of the f32 product: each input and weight carries a relative
    /// error of at most 2^-9.
    func testReferenceIsCloseToF32() {
        var rng = SystemRandomNumberGenerator()
        let (m, k, n) = (5, 200, 7)
        let x = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let w = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        var packed = [UInt16](repeating: 0, count: hydra_bf16_packed_elements(k, n))
        hydra_bf16_pack_weights(w, k, n, &packed)
        var out = [Float](repeating: 0, count: m * n)
        hydra_conv1x1_bf16_reference(x, m, k, packed, nil, n, -.infinity, .infinity, &out, 0, nil)
        for i in 0..<m { for o in 0..<n {
            var exact = 0.0, magnitude = 0.0
            for j in 0..<k { exact += Double(x[i * k + j]) * Double(w[o * k + j]); magnitude += abs(Double(x[i * k + j]) * Double(w[o * k + j])) }
            XCTAssertEqual(Double(out[i * n + o]), exact, accuracy: magnitude * 2 * 0x1p-9 + 1e-6)
        } }
    }
}

extension Optional where Wrapped == [Float] {
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let self else { return body(nil) }
        return self.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}

/// The residual add of the GEMM epilogues, in each form: none, an f32 residual with the raw output
/// also written, a bf16 one with a ReLU6 clamp. `run` returns the kernel's and the reference's bytes
/// (output, then raw), and checks that nothing was written past either.
struct ResidualCase: CustomStringConvertible {
    let values: [Float]?
    let bf16: Bool, raw: Bool, lo: Float, hi: Float
    /// The raw copy's format (HYDRA_RAW_*), with the quantization of a u8 one.
    var rawFormat = Int32(HYDRA_RAW_AS_OUTPUT), rawScale: Float = 0, rawZero: Int32 = 0
    var description: String {
        values == nil ? "no residual" : "residual \(bf16 ? "bf16" : "f32")\(raw ? " + raw (format \(rawFormat))" : "")"
    }

    static func all(_ count: Int, _ rng: inout SystemRandomNumberGenerator) -> [ResidualCase] {
        let v = (0..<count).map { _ in Float.random(in: -3...3, using: &rng) }
        return [ResidualCase(values: nil, bf16: false, raw: false, lo: 0, hi: 0),
                ResidualCase(values: v, bf16: false, raw: true, lo: -.infinity, hi: .infinity),
                ResidualCase(values: v, bf16: true, raw: false, lo: 0, hi: 6),
                ResidualCase(values: v, bf16: false, raw: true, lo: 0, hi: 6, rawFormat: Int32(HYDRA_RAW_BF16)),
                ResidualCase(values: v, bf16: true, raw: true, lo: -.infinity, hi: .infinity, rawFormat: Int32(HYDRA_RAW_F32)),
                // Scale and zero point such that some raw values saturate at both ends.
                ResidualCase(values: v, bf16: false, raw: true, lo: -.infinity, hi: .infinity, rawFormat: Int32(HYDRA_RAW_U8),
                             rawScale: 0.01, rawZero: 100)]
    }

    /// The kernel's and the reference's outputs (and raw copies) for `elements` outputs of `size` bytes.
    func run(elements: Int, size: Int, kernel: (UnsafeMutableRawPointer, UnsafePointer<hydra_residual>?) -> Void,
             reference: (UnsafeMutableRawPointer, UnsafePointer<hydra_residual>?) -> Void) -> ([UInt8], [UInt8]) {
        let count = elements * size
        let rawCount = elements * [Int32(HYDRA_RAW_F32): 4, Int32(HYDRA_RAW_BF16): 2, Int32(HYDRA_RAW_U8): 1][rawFormat, default: size]
        let input: [UInt8] = values.map { v in bf16 ? v.map { hydra_bf16_from_float($0) }.withUnsafeBytes { Array($0) } : v.withUnsafeBytes { Array($0) } } ?? []
        func go(_ body: (UnsafeMutableRawPointer, UnsafePointer<hydra_residual>?) -> Void) -> [UInt8] {
            var out = [UInt8](repeating: 0xA5, count: count + 64), rawOut = [UInt8](repeating: 0xA5, count: rawCount + 64)
            input.withUnsafeBytes { inp in
                out.withUnsafeMutableBytes { o in
                    rawOut.withUnsafeMutableBytes { r in
                        guard values != nil else { return body(o.baseAddress!, nil) }
                        var res = hydra_residual(input: inp.baseAddress, bf16: bf16 ? 1 : 0, lo: lo, hi: hi, raw: raw ? r.baseAddress : nil,
                                                 raw_format: rawFormat, raw_scale: rawScale, raw_zero: rawZero)
                        body(o.baseAddress!, &res)
                    }
                }
            }
            XCTAssertTrue(out.suffix(64).allSatisfy { $0 == 0xA5 } && rawOut.suffix(64).allSatisfy { $0 == 0xA5 }, "wrote past the end")
            return Array(out.prefix(count)) + (raw ? Array(rawOut.prefix(rawCount)) : [])
        }
        return (go(kernel), go(reference))
    }
}
