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
                let w = (0..<(n * k)).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
                let bias = withBias ? (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } : nil
                var packed = [Int8](repeating: 0, count: hydra_int8_packed_bytes(k, n))
                var scales = [Float](repeating: 0, count: n), sums = [Int32](repeating: 0, count: n)
                hydra_int8_pack_weights(w, k, n, &packed, &scales, &sums)
                let (lo, hi): (Float, Float) = relu6 ? (0, 6) : (-.infinity, .infinity)
                for layout in [0, HYDRA_BF16_INPUT, HYDRA_BF16_OUTPUT, HYDRA_BF16_INPUT | HYDRA_BF16_OUTPUT].map(Int32.init) {
                    for residual in ResidualCase.all(m * n, &rng) {
                        let size = layout & Int32(HYDRA_BF16_OUTPUT) != 0 ? 2 : 4
                        let input: [UInt8] = layout & Int32(HYDRA_BF16_INPUT) != 0 ? x16.withUnsafeBytes { Array($0) } : x.withUnsafeBytes { Array($0) }
                        let (got, want) = residual.run(count: m * n * size) { out, res in
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
