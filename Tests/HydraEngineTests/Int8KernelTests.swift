import CXNNPACK
import HydraKernels
import XCTest

final class Int8KernelTests: XCTestCase {
    func testQuantizationRoundsToNearestEvenAndSaturates() {
        XCTAssertEqual(hydra_int8_quantize(0, 0.5, 0), 0)
        XCTAssertEqual(hydra_int8_quantize(0.75, 0.5, 0), 2)   // 1.5 -> 2 (even)
        XCTAssertEqual(hydra_int8_quantize(1.25, 0.5, 0), 2)   // 2.5 -> 2 (even)
        XCTAssertEqual(hydra_int8_quantize(-1, 0.5, 10), 8)
        XCTAssertEqual(hydra_int8_quantize(-100, 0.5, 10), 0)  // below the range: 0
        XCTAssertEqual(hydra_int8_quantize(1000, 0.5, 10), 255)
        XCTAssertEqual(hydra_int8_quantize(.infinity, 0.5, 0), 255)
        XCTAssertEqual(hydra_int8_quantize(.nan, 0.5, 3), 0)
    }

    func testPackingIsSymmetricPerOutputChannelWithColumnSums() {
        // 5 inputs, 2 outputs; blocks of 32 outputs, k in fours, padded to 8.
        let w: [Float] = [0.5, -1, 0.25, 1, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(hydra_int8_packed_bytes(5, 2), 8 * 32)
        var packed = [Int8](repeating: 99, count: 8 * 32), scales = [Float](repeating: 0, count: 2), sums = [Int32](repeating: 7, count: 2)
        hydra_int8_pack_weights(w, 5, 2, &packed, &scales, &sums)
        func at(_ k: Int, _ n: Int) -> Int8 { packed[(k / 4) * 128 + n * 4 + k % 4] }
        XCTAssertEqual(scales[0], Float(1.0 / 127.0))
        XCTAssertEqual((0..<8).map { at($0, 0) }, [64, -127, 32, 127, 0, 0, 0, 0])  // 63.5 -> 64, 31.75 -> 32
        XCTAssertEqual(sums[0], 64 - 127 + 32 + 127)
        XCTAssertEqual(scales[1], 1)  // an all-zero channel
        XCTAssertEqual(sums[1], 0)
        XCTAssertEqual(at(0, 2), 0)  // padding outputs are zero
    }

    /// The VNNI kernel and the scalar statement of its arithmetic agree bit for bit, for each layout,
    /// zero point 0 and not, at sizes with row-panel, k (not a multiple of 4 or 16) and output tails.
    func testKernelEqualsScalarReferenceBitForBit() throws {
        try XCTSkipUnless(hydra_int8_supported() != 0, "this CPU has no AVX512-VNNI")
        var rng = SystemRandomNumberGenerator()
        for threads in [1, 3] {
            let pool = pthreadpool_create(threads)
            defer { pthreadpool_destroy(pool) }
            for (m, k, n, relu6, withBias, zero) in [(1, 1, 1, false, false, 0), (7, 3, 17, true, true, 128), (9, 32, 32, false, true, 0),
                                                     (70, 96, 24, true, true, 37), (129, 33, 40, false, false, 255), (16, 960, 160, false, true, 90),
                                                     (65, 144, 64, true, false, 0), (3, 5, 5, false, true, 1), (20, 18, 16, true, false, 12)] {
                let scale = Float.random(in: 0.005...0.05, using: &rng)
                // Some inputs beyond the quantized range, to exercise the saturation.
                let x = (0..<(m * k)).map { _ in Float.random(in: -300...300, using: &rng) * scale }
                let x16 = x.map { hydra_bf16_from_float($0) }
                let x8 = (0..<(m * k)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let w = (0..<(n * k)).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
                let bias = withBias ? (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } : nil
                var packed = [Int8](repeating: 0, count: hydra_int8_packed_bytes(k, n))
                var scales = [Float](repeating: 0, count: n), sums = [Int32](repeating: 0, count: n)
                hydra_int8_pack_weights(w, k, n, &packed, &scales, &sums)
                let (lo, hi): (Float, Float) = relu6 ? (0, 6) : (-.infinity, .infinity)
                for layout in [0, HYDRA_BF16_INPUT, HYDRA_BF16_OUTPUT, HYDRA_BF16_INPUT | HYDRA_BF16_OUTPUT, HYDRA_U8_INPUT,
                               HYDRA_U8_INPUT | HYDRA_BF16_OUTPUT].map(Int32.init) {
                    for residual in ResidualCase.all(m * n, &rng) {
                        let size = layout & Int32(HYDRA_BF16_OUTPUT) != 0 ? 2 : 4
                        let input: [UInt8] = layout & Int32(HYDRA_U8_INPUT) != 0 ? x8
                            : layout & Int32(HYDRA_BF16_INPUT) != 0 ? x16.withUnsafeBytes { Array($0) } : x.withUnsafeBytes { Array($0) }
                        let (got, want) = residual.run(elements: m * n, size: size) { out, res in
                            XCTAssertEqual(bias.withOptionalPointer { b in
                                hydra_conv1x1_int8(input, m, k, scale, Int32(zero), packed, scales, sums, b, n, lo, hi, out, layout, res, pool)
                            }, 0)
                        } reference: { out, res in
                            bias.withOptionalPointer { b in
                                hydra_conv1x1_int8_reference(input, m, k, scale, Int32(zero), packed, scales, sums, b, n, lo, hi, out, layout, res)
                            }
                        }
                        XCTAssertEqual(got, want, "\(m)x\(k)x\(n), zero \(zero), layout \(layout), \(residual), \(threads) threads")
                    }
                }
            }
            var out = [Float](repeating: 0, count: 4)
            XCTAssertEqual(hydra_conv1x1_int8([Float](repeating: 0, count: 4), 1, 4, 0, 0, [Int8](repeating: 0, count: 128), [1], [0],
                                              nil, 1, 0, 6, &out, 0, nil, pool), -1, "a zero scale is refused")
            XCTAssertEqual(hydra_conv1x1_int8([Float](repeating: 0, count: 4), 1, 4, 1, 256, [Int8](repeating: 0, count: 128), [1], [0],
                                              nil, 1, 0, 6, &out, 0, nil, pool), -1, "a zero point outside 0-255 is refused")
        }
    }

    /// The int8 head kernel and its scalar statement agree bit for bit (integer sums, one FMA), at sizes
    /// with borders, pixel-block tails and 1-9 outputs; padding taps add nothing (zero point 0).
    func testHeadEqualsItsReferenceBitForBit() throws {
        try XCTSkipUnless(hydra_int8_supported() != 0, "this CPU has no AVX512-VNNI")
        var rng = SystemRandomNumberGenerator()
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        for (h, w, c, o) in [(1, 1, 64, 1), (3, 9, 128, 6), (5, 17, 64, 3), (7, 5, 256, 1), (4, 11, 64, 9), (2, 8, 192, 4), (6, 3, 64, 5)] {
            let x = (0..<(h * w * c)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let weights = (0..<(o * 9 * c)).map { _ in Float.random(in: -0.2...0.2, using: &rng) }
            var packed = [Int8](repeating: 0, count: weights.count), scales = [Float](repeating: 0, count: o)
            hydra_int8_pack_head(weights, c, o, &packed, &scales)
            let bias = (0..<o).map { _ in Float.random(in: -1...1, using: &rng) }
            var got = [Float](repeating: .nan, count: h * w * o + 8), want = [Float](repeating: 0, count: h * w * o)
            XCTAssertEqual(hydra_head3x3_int8(x, h, w, c, 0.02, packed, scales, bias, o, &got, pool), 0)
            hydra_head3x3_int8_reference(x, h, w, c, 0.02, packed, scales, bias, o, &want)
            XCTAssertEqual(Array(got.prefix(h * w * o)).map(\.bitPattern), want.map(\.bitPattern), "head \(h)x\(w)x\(c) -> \(o)")
            XCTAssertTrue(got.suffix(8).allSatisfy(\.isNaN), "wrote past the end")
            XCTAssertEqual(packed.map { abs(Int($0)) }.max(), 127)
        }
        var out = [Float](repeating: 0, count: 4)
        XCTAssertEqual(hydra_head3x3_int8([UInt8](repeating: 0, count: 32), 1, 1, 32, 1, [Int8](repeating: 0, count: 288), [1], nil, 1, &out, pool),
                       -1, "32 channels")
    }

    /// The crp1 chain's u8 output (an int8 head's input) is its f32 output quantized as hydra_int8_quantize does.
    func testChainU8OutputIsItsF32OutputQuantized() throws {
        var rng = SystemRandomNumberGenerator()
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        let (h, w, c) = (9, 13, 32)
        let x = (0..<(h * w * c)).map { _ in Float.random(in: -2...6, using: &rng) }
        let scales = (0..<(5 * c)).map { _ in Float.random(in: -1...2, using: &rng) }
        var f32 = [Float](repeating: 0, count: x.count), u8 = [UInt8](repeating: 0xEE, count: x.count + 16)
        var scratch = [Float](repeating: 0, count: hydra_crp_chain_scratch_floats(w, c))
        let qscale: Float = 5.3 / 255  // a calibrated range below 6: values above it saturate
        let status = x.withUnsafeBytes { inp in scales.withUnsafeBufferPointer { sc in f32.withUnsafeMutableBytes { o0 in u8.withUnsafeMutableBytes { o1 in
            var args = hydra_crp_chain_args()
            args.input = inp.baseAddress
            (args.lo, args.hi) = (-.infinity, .infinity)
            args.scales = sc.baseAddress
            args.outputs = 2
            args.output_scale = (sc.baseAddress! + 4 * c, sc.baseAddress! + 4 * c, nil)
            (args.output_lo, args.output_hi) = (0, 6)
            args.output = (o0.baseAddress, o1.baseAddress, nil)
            args.output_u8 = (0, 1, 0)
            args.output_qscale = (0, qscale, 0)
            return hydra_crp_chain(&args, &scratch, h, w, c, pool)
        } } } }
        XCTAssertEqual(status, 0)
        XCTAssertEqual(Array(u8.prefix(x.count)), f32.map { hydra_int8_quantize($0, qscale, 0) })
        XCTAssertTrue(u8.suffix(16).allSatisfy { $0 == 0xEE }, "wrote past the end")
        XCTAssertTrue(u8.contains(255) && u8.contains(0), "both ends of the range are exercised")
    }

    /// Within the quantization's bound of the f32 product: each input is off by at most scale / 2 and
    /// each weight by s[o] / 2 (inputs inside the range).
    func testReferenceIsCloseToF32() {
        var rng = SystemRandomNumberGenerator()
        let (m, k, n) = (5, 200, 7)
        let scale: Float = 2.0 / 255, zero: Int32 = 128  // the range [-1.0039, 1]
        let x = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let w = (0..<(n * k)).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
        var packed = [Int8](repeating: 0, count: hydra_int8_packed_bytes(k, n))
        var scales = [Float](repeating: 0, count: n), sums = [Int32](repeating: 0, count: n)
        hydra_int8_pack_weights(w, k, n, &packed, &scales, &sums)
        var out = [Float](repeating: 0, count: m * n)
        hydra_conv1x1_int8_reference(x, m, k, scale, zero, packed, scales, sums, nil, n, -.infinity, .infinity, &out, 0, nil)
        for p in 0..<m {
            for o in 0..<n {
                var exact = 0.0, bound = 0.0
                for i in 0..<k {
                    exact += Double(x[p * k + i]) * Double(w[o * k + i])
                    bound += Double(scale) / 2 * abs(Double(w[o * k + i])) + Double(scales[o]) / 2 * (abs(Double(x[p * k + i])) + Double(scale) / 2)
                }
                XCTAssertLessThanOrEqual(abs(Double(out[p * n + o]) - exact), bound * 1.001 + 1e-6, "pixel \(p), output \(o)")
            }
        }
    }
}
