import CXNNPACK
import HydraKernels
import XCTest

final class KernelTests: XCTestCase {
    /// PyTorch's MaxPool2d(5, stride 1, padding 2), written the obvious way.
    func naiveMaxPool(_ x: [Float], h: Int, w: Int, c: Int) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for y in 0..<h { for xx in 0..<w { for k in 0..<c {
            var m = -Float.infinity
            for dy in -2...2 { for dx in -2...2 {
                let yy = y + dy, xs = xx + dx
                if yy >= 0, yy < h, xs >= 0, xs < w { m = max(m, x[(yy * w + xs) * c + k]) }
            } }
            out[(y * w + xx) * c + k] = m
        } } }
        return out
    }

    func testMaxPoolMatchesDefinitionAtOddSizesAndBorders() throws {
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        var rng = SystemRandomNumberGenerator()
        for (h, w, c) in [(1, 1, 1), (2, 3, 5), (5, 5, 16), (7, 11, 3), (13, 4, 256), (9, 17, 33)] {
            let x = (0..<(h * w * c)).map { _ in Float.random(in: -5...5, using: &rng) }
            var out = [Float](repeating: .nan, count: x.count + 4)
            hydra_maxpool5(x, &out, h, w, c, pool)
            XCTAssertEqual(Array(out.prefix(x.count)), naiveMaxPool(x, h: h, w: w, c: c), "\(h)x\(w)x\(c)")
            XCTAssertTrue(out.suffix(4).allSatisfy(\.isNaN), "wrote past the end")
        }
    }

    /// The fused crp1 chain must give exactly what four separate stages give (same sums, same order),
    /// at sizes where the wavefront's rings and clamped borders are all exercised.
    func testCRPChainEqualsFourStagesBitForBit() throws {
        for threads in [1, 2, 3] {
            let pool = pthreadpool_create(threads)
            defer { pthreadpool_destroy(pool) }
            var rng = SystemRandomNumberGenerator()
            for (h, w, c) in [(1, 1, 16), (2, 3, 32), (6, 2, 16), (7, 11, 48), (13, 4, 256), (40, 9, 16)] {
                let x = (0..<(h * w * c)).map { _ in Float.random(in: -5...5, using: &rng) }
                let scales = (0..<(4 * c)).map { _ in Float.random(in: -1.5...1.5, using: &rng) }
                var top = x, acc = x
                var topOut = [Float](repeating: 0, count: x.count), accOut = topOut
                for i in 0..<4 {
                    let s = Array(scales[(i * c)..<((i + 1) * c)])
                    hydra_crp_scale_stage(top, acc, s, &topOut, &accOut, h, w, c, pool)
                    (top, acc) = (topOut, accOut)
                }
                var out = [Float](repeating: .nan, count: x.count + 4)
                XCTAssertEqual(hydra_crp_scale_chain(x, scales, &out, h, w, c, pool), 0)
                XCTAssertEqual(Array(out.prefix(x.count)), acc, "\(h)x\(w)x\(c), \(threads) threads")
                XCTAssertTrue(out.suffix(4).allSatisfy(\.isNaN), "wrote past the end")
            }
        }
        var out = [Float](repeating: 0, count: 8)
        XCTAssertEqual(hydra_crp_scale_chain([Float](repeating: 0, count: 8), [Float](repeating: 1, count: 32), &out, 1, 1, 8, nil), -1)
    }

    func testChannelScaleClamps() {
        let x: [Float] = [1, -2, 3, 10, -4, 0.5]
        let s: [Float] = [2, 3, -1]
        var out = [Float](repeating: 0, count: 6)
        hydra_channel_scale(x, s, &out, 2, 3, 0, 6, nil)
        XCTAssertEqual(out, [2, 0, 0, 6, 0, 0])
        hydra_channel_scale(x, s, &out, 2, 3, -.infinity, .infinity, nil)
        XCTAssertEqual(out, [2, -6, -3, 20, -12, -0.5])
    }

    func testPreprocessNormalises() {
        let rgb: [UInt8] = [0, 128, 255, 255, 0, 7]
        var out = [Float](repeating: 0, count: 6)
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        hydra_preprocess_rgb8(rgb, 2, mean, std, &out, nil)
        for i in 0..<6 {
            let want = (Float(rgb[i]) / 255 - mean[i % 3]) / std[i % 3]
            XCTAssertEqual(out[i], want, accuracy: 1e-6)
        }
    }

    func testSmallOutput3x3ConvolutionMatchesDefinition() {
        let pool = pthreadpool_create(2)
        defer { pthreadpool_destroy(pool) }
        var rng = SystemRandomNumberGenerator()
        for (h, w, c, o) in [(1, 1, 16, 1), (3, 5, 32, 6), (7, 9, 64, 1), (4, 13, 256, 7), (6, 6, 16, 9)] {
            let x = (0..<(h * w * c)).map { _ in Float.random(in: -1...1, using: &rng) }
            let wt = (0..<(o * 9 * c)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<o).map { _ in Float.random(in: -1...1, using: &rng) }
            var out = [Float](repeating: .nan, count: h * w * o)
            hydra_conv3x3_small(x, h, w, c, wt, b, o, &out, pool)
            for yy in 0..<h { for xx in 0..<w { for k in 0..<o {
                var want = Double(b[k])
                for ky in 0..<3 { for kx in 0..<3 {
                    let sy = yy + ky - 1, sx = xx + kx - 1
                    guard sy >= 0, sy < h, sx >= 0, sx < w else { continue }
                    for i in 0..<c { want += Double(x[(sy * w + sx) * c + i]) * Double(wt[((k * 3 + ky) * 3 + kx) * c + i]) }
                } }
                XCTAssertEqual(Double(out[(yy * w + xx) * o + k]), want, accuracy: 1e-3, "\(h)x\(w)x\(c)->\(o) at (\(xx),\(yy),\(k))")
            } } }
        }
    }

    func testDispatchNamesAnInstructionSet() {
        XCTAssertTrue(["avx512f", "avx2", "generic"].contains(String(cString: hydra_kernels_isa())))
    }
}
