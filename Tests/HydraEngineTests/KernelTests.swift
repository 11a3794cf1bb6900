import CXNNPACK
import HydraKernels
import XCTest

final class KernelTests: XCTestCase {
    /// The instruction sets this CPU can run the row kernels' clones as (`hydra_kernels_set_isa`).
    static let isas: [String] = ["avx512f", "avx2", "generic"].filter { (name: String) in hydra_kernels_set_isa(name) == 0 }

    /// Runs `body` once per clone set (its name is the argument), as XNNPACK tests each ISA's microkernels.
    func forEachISA(file: StaticString = #filePath, line: UInt = #line, _ body: (String) throws -> Void) rethrows {
        defer { _ = hydra_kernels_set_isa(nil) }
        XCTAssertTrue(Self.isas.contains("generic"), "the baseline clones run everywhere", file: file, line: line)
        for isa in Self.isas {
            XCTAssertEqual(hydra_kernels_set_isa(isa), 0, file: file, line: line)
            try body(isa)
        }
    }

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
        try forEachISA { isa in
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
    }

    /// A smaller addend is upsampled by the chain as PyTorch's bilinear interpolation (align_corners
    /// False) would: the outputs equal the chain's on the addend upsampled first, bit for bit.
    func testCRPChainUpsamplesASmallerAddendAsPyTorchDoes() throws {
        try forEachISA { isa in
            let pool = pthreadpool_create(2)
            defer { pthreadpool_destroy(pool) }
            var rng = SystemRandomNumberGenerator()
            for (h, w, ah, aw, c) in [(93, 307, 47, 154, 16), (7, 11, 4, 6, 32), (5, 3, 1, 1, 16), (9, 9, 3, 8, 16)] {
                let input = (0..<(h * w * c)).map { _ in Float.random(in: -5...5, using: &rng) }
                let small = (0..<(ah * aw * c)).map { _ in Float.random(in: -3...5, using: &rng) }
                func taps(_ n: Int, _ out: Int) -> [(Int, Int, Float, Float)] {
                    let scale = Float(n) / Float(out)
                    return (0..<out).map { i in
                        var src = scale * (Float(i) + 0.5) - 0.5
                        if src < 0 { src = 0 }
                        let i0 = min(Int(src), n - 1), i1 = min(i0 + 1, n - 1), l1 = src - Float(i0)
                        return (i0, i1, 1 - l1, l1)
                    }
                }
                let ty = taps(ah, h), tx = taps(aw, w)
                var big = [Float](repeating: 0, count: h * w * c)
                for y in 0..<h { for x in 0..<w { for k in 0..<c {
                    func at(_ r: Int, _ q: Int) -> Float { small[(r * aw + q) * c + k] }
                    let (y0, y1, a0, a1) = ty[y], (x0, x1, b0, b1) = tx[x]
                    big[(y * w + x) * c + k] = a0 * (b0 * at(y0, x0) + b1 * at(y0, x1)) + a1 * (b0 * at(y1, x0) + b1 * at(y1, x1))
                } } }
                let scales = (0..<(5 * c)).map { _ in Float.random(in: -1.5...1.5, using: &rng) }
                func chain(_ addend: [Float], _ size: (Int, Int)?) -> [Float] {
                    var out = [Float](repeating: .nan, count: h * w * c)
                    var scratch = [Float](repeating: .infinity, count: hydra_crp_chain_scratch_floats(w, c))
                    let status = input.withUnsafeBytes { i in addend.withUnsafeBufferPointer { a in scales.withUnsafeBufferPointer { sc in
                        out.withUnsafeMutableBytes { o in
                            var args = hydra_crp_chain_args()
                            args.input = i.baseAddress
                            args.addend = a.baseAddress
                            if let size { (args.addend_height, args.addend_width) = (size.0, size.1) }
                            (args.lo, args.hi, args.output_lo, args.output_hi) = (0, 6, 0, 6)
                            args.scales = sc.baseAddress
                            args.outputs = 1
                            args.output_scale = (sc.baseAddress! + 4 * c, nil, nil)
                            args.output = (o.baseAddress, nil, nil)
                            return hydra_crp_chain(&args, &scratch, h, w, c, pool)
                        }
                    } } }
                    XCTAssertEqual(status, 0)
                    return out
                }
                XCTAssertEqual(chain(small, (ah, aw)), chain(big, nil), "\(ah)x\(aw) -> \(h)x\(w)x\(c)")
            }
        }
    }

    /// Pooling bf16 or u8 tensors gives the bits of pooling in f32 and converting after, for every
    /// pair of formats the reduced-precision replicas use, at border-heavy sizes and 16-channel tails of
    /// the u8 path's 64-channel blocks.
    func testTypedMaxPoolIsTheF32PoolConverted() throws {
        try forEachISA { isa in
            let pool = pthreadpool_create(3)
            defer { pthreadpool_destroy(pool) }
            var rng = SystemRandomNumberGenerator()
            let (scale, zero): (Float, Int32) = (0.03, 40)
            func bytes<T>(_ a: [T]) -> [UInt8] { a.withUnsafeBytes { Array($0) } }
            for (h, w, c) in [(1, 1, 16), (2, 3, 32), (5, 5, 80), (7, 11, 16), (13, 4, 256), (6, 2, 48)] {
                let x = (0..<(h * w * c)).map { _ in Float.random(in: -5...5, using: &rng) }
                let x16 = x.map { hydra_bf16_from_float($0) }
                let widened = x16.map { Float(bitPattern: UInt32($0) << 16) }
                let x8 = x.map { hydra_int8_quantize($0, scale, zero) }
                let f = naiveMaxPool(x, h: h, w: w, c: c), f16 = naiveMaxPool(widened, h: h, w: w, c: c)
                let cases: [(Int32, [UInt8], Int32, [UInt8])] = [
                    (Int32(HYDRA_F32), bytes(x), Int32(HYDRA_F32), bytes(f)),
                    (Int32(HYDRA_F32), bytes(x), Int32(HYDRA_BF16), bytes(f.map { hydra_bf16_from_float($0) })),
                    (Int32(HYDRA_F32), bytes(x), Int32(HYDRA_U8), f.map { hydra_int8_quantize($0, scale, zero) }),
                    (Int32(HYDRA_BF16), bytes(x16), Int32(HYDRA_BF16), bytes(f16.map { hydra_bf16_from_float($0) })),
                    (Int32(HYDRA_BF16), bytes(x16), Int32(HYDRA_F32), bytes(f16)),
                    (Int32(HYDRA_BF16), bytes(x16), Int32(HYDRA_U8), f16.map { hydra_int8_quantize($0, scale, zero) }),
                    (Int32(HYDRA_U8), x8, Int32(HYDRA_U8), f.map { hydra_int8_quantize($0, scale, zero) }),
                ]
                for (inFormat, input, outFormat, want) in cases {
                    var out = [UInt8](repeating: 0xA5, count: want.count + 64)
                    XCTAssertEqual(hydra_maxpool5_typed(input, inFormat, &out, outFormat, scale, zero, h, w, c, pool), 0)
                    XCTAssertEqual(Array(out.prefix(want.count)), want, "\(h)x\(w)x\(c) \(inFormat) -> \(outFormat)")
                    XCTAssertTrue(out.suffix(64).allSatisfy { $0 == 0xA5 }, "wrote past the end")
                }
            }
            var out = [UInt8](repeating: 0, count: 64)
            XCTAssertEqual(hydra_maxpool5_typed([UInt8](repeating: 0, count: 16), Int32(HYDRA_U8), &out, Int32(HYDRA_F32), 1, 0, 1, 1, 16, pool), -1)
            XCTAssertEqual(hydra_maxpool5_typed([Float](repeating: 0, count: 15), Int32(HYDRA_F32), &out, Int32(HYDRA_F32), 1, 0, 1, 1, 15, pool), -1)
        }
    }

    /// The fused crp1 chain must give exactly what the separate steps give (the add, four stages, the
    /// channel scales; same sums, same order), at sizes where the wavefront's rings and clamped
    /// borders are all exercised, with and without the add, from f32 or bf16, to f32 and bf16 outputs.
    func testCRPChainEqualsTheSeparateStepsBitForBit() throws {
        try forEachISA { isa in
            for threads in [1, 2, 3] {
                let pool = pthreadpool_create(threads)
                defer { pthreadpool_destroy(pool) }
                var rng = SystemRandomNumberGenerator()
                for (n, (h, w, c)) in [(1, 1, 16), (2, 3, 32), (6, 2, 16), (7, 11, 48), (13, 4, 256), (40, 9, 16), (3, 12, 32)].enumerated() {
                    let fused = n % 2 == 1, bf16Input = n % 3 == 2
                    var input = (0..<(h * w * c)).map { _ in Float.random(in: -5...5, using: &rng) }
                    let input16 = input.map { hydra_bf16_from_float($0) }
                    if bf16Input { input = input16.map { Float(bitPattern: UInt32($0) << 16) } }
                    let addend = (0..<(h * w * c)).map { _ in Float.random(in: -3...5, using: &rng) }
                    let x = fused ? zip(input, addend).map { min(max($0 + $1, 0), 6) } : input
                    let scales = (0..<(4 * c)).map { _ in Float.random(in: -1.5...1.5, using: &rng) }
                    var top = x, acc = x
                    var topOut = [Float](repeating: 0, count: x.count), accOut = topOut
                    for i in 0..<4 {
                        let s = Array(scales[(i * c)..<((i + 1) * c)])
                        hydra_crp_scale_stage(top, acc, s, &topOut, &accOut, h, w, c, pool)
                        (top, acc) = (topOut, accOut)
                    }
                    let s1 = (0..<c).map { _ in Float.random(in: -1...2, using: &rng) }, s2 = (0..<c).map { _ in Float.random(in: 0...3, using: &rng) }
                    var want1 = [Float](repeating: 0, count: x.count), want2 = [UInt16](repeating: 0, count: x.count)
                    hydra_channel_scale(acc, s1, &want1, h * w, c, 0, 6, nil)
                    hydra_channel_scale_bf16_reference(acc, s2, &want2, h * w, c, 0, 6)

                    var sum = [Float](repeating: .nan, count: x.count + 4), out1 = sum, out2 = [UInt16](repeating: 0xFFFF, count: x.count + 4)
                    // Scratch with a guard after it, filled with garbage: the kernel must not depend on its contents.
                    let need = hydra_crp_chain_scratch_floats(w, c)
                    var scratch = [Float](repeating: .infinity, count: need + 4)
                    let status = input.withUnsafeBytes { f32 in input16.withUnsafeBytes { b16 in addend.withUnsafeBufferPointer { add in
                        scales.withUnsafeBufferPointer { sc in s1.withUnsafeBufferPointer { p1 in s2.withUnsafeBufferPointer { p2 in
                            sum.withUnsafeMutableBytes { o0 in out1.withUnsafeMutableBytes { o1 in out2.withUnsafeMutableBytes { o2 in
                                var args = hydra_crp_chain_args()
                                args.input = bf16Input ? b16.baseAddress : f32.baseAddress
                                args.input_bf16 = bf16Input ? 1 : 0
                                args.addend = fused ? add.baseAddress : nil
                                (args.lo, args.hi) = (0, 6)
                                args.scales = sc.baseAddress
                                args.outputs = 3
                                args.output_scale = (nil, p1.baseAddress, p2.baseAddress)
                                (args.output_lo, args.output_hi) = (0, 6)
                                args.output = (o0.baseAddress, o1.baseAddress, o2.baseAddress)
                                args.output_bf16 = (0, 0, 1)
                                return hydra_crp_chain(&args, &scratch, h, w, c, pool)
                            } } }
                        } } }
                    } } }
                    XCTAssertEqual(status, 0)
                    let what = "\(h)x\(w)x\(c), add \(fused), bf16 input \(bf16Input), \(threads) threads"
                    XCTAssertTrue(scratch.suffix(4).allSatisfy { $0 == .infinity }, "wrote past the scratch")
                    XCTAssertEqual(Array(sum.prefix(x.count)), acc, what)
                    XCTAssertEqual(Array(out1.prefix(x.count)), want1, what)
                    XCTAssertEqual(Array(out2.prefix(x.count)), want2, what)
                    XCTAssertTrue(sum.suffix(4).allSatisfy(\.isNaN) && out1.suffix(4).allSatisfy(\.isNaN), "wrote past the end")
                    XCTAssertTrue(out2.suffix(4).allSatisfy { $0 == 0xFFFF }, "wrote past the end")
                }
            }
            var args = hydra_crp_chain_args()
            args.outputs = 1
            var scratch = [Float](repeating: 0, count: 1024)
            XCTAssertEqual(hydra_crp_chain(&args, &scratch, 1, 1, 8, nil), -1, "8 channels")
            args.outputs = 4
            XCTAssertEqual(hydra_crp_chain(&args, &scratch, 1, 1, 16, nil), -1, "4 outputs")
        }
    }

    func testChannelScaleClamps() {
        forEachISA { isa in
            let x: [Float] = [1, -2, 3, 10, -4, 0.5]
            let s: [Float] = [2, 3, -1]
            var out = [Float](repeating: 0, count: 6)
            hydra_channel_scale(x, s, &out, 2, 3, 0, 6, nil)
            XCTAssertEqual(out, [2, 0, 0, 6, 0, 0])
            hydra_channel_scale(x, s, &out, 2, 3, -.infinity, .infinity, nil)
            XCTAssertEqual(out, [2, -6, -3, 20, -12, -0.5])
        }
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
        forEachISA { isa in
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
    }

    /// The fused first layer against the definition: normalise, zero-pad, 3x3 stride 2, bias, clamp.
    func testStemMatchesPreprocessingThenConvolution() {
        forEachISA { isa in
            let pool = pthreadpool_create(2)
            defer { pthreadpool_destroy(pool) }
            let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
            var rng = SystemRandomNumberGenerator()
            // Widths give one output, a partial 4-pixel group, and several 32-column tiles with a tail.
            for (h, w, o) in [(1, 1, 16), (2, 3, 32), (5, 7, 16), (9, 131, 32), (4, 70, 48)] {
                let rgb = (0..<(h * w * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let wt = (0..<(27 * o)).map { _ in Float.random(in: -1...1, using: &rng) } // [ky][kx][in][out]
                let b = (0..<o).map { _ in Float.random(in: -1...1, using: &rng) }
                let oh = (h + 1) / 2, ow = (w + 1) / 2
                var out = [Float](repeating: .nan, count: oh * ow * o + 4)
                XCTAssertEqual(hydra_stem_conv3x3s2_rgb8(rgb, h, w, mean, std, wt, b, o, -2, 2.5, &out, pool), 0)
                XCTAssertTrue(out.suffix(4).allSatisfy(\.isNaN), "wrote past the end")
                for y in 0..<oh { for x in 0..<ow { for k in 0..<o {
                    var want = Double(b[k])
                    for ky in 0..<3 { for kx in 0..<3 {
                        let sy = 2 * y + ky - 1, sx = 2 * x + kx - 1
                        guard sy >= 0, sy < h, sx >= 0, sx < w else { continue }
                        for c in 0..<3 {
                            let v = (Float(rgb[(sy * w + sx) * 3 + c]) / 255 - mean[c]) / std[c]
                            want += Double(v) * Double(wt[((ky * 3 + kx) * 3 + c) * o + k])
                        }
                    } }
                    want = min(max(want, -2), 2.5)
                    XCTAssertEqual(Double(out[(y * ow + x) * o + k]), want, accuracy: 1e-4, "\(h)x\(w)->\(o) at (\(x),\(y),\(k))")
                } } }
            }
            var out = [Float](repeating: 0, count: 64)
            XCTAssertEqual(hydra_stem_conv3x3s2_rgb8([0, 0, 0], 1, 1, mean, std, [Float](repeating: 0, count: 27 * 8), nil, 8,
                                                     0, 6, &out, nil), -1, "output channels must be a multiple of 16")
        }
    }

    /// Depthwise 3x3 against the definition, both strides, with the borders, the 4-pixel interior
    /// groups and their tails all exercised.
    func testDepthwiseMatchesDefinition() {
        forEachISA { isa in
            let pool = pthreadpool_create(2)
            defer { pthreadpool_destroy(pool) }
            var rng = SystemRandomNumberGenerator()
            for (h, w, c) in [(1, 1, 16), (2, 2, 16), (3, 5, 32), (6, 7, 16), (5, 19, 48), (9, 40, 16)] {
                for stride in [1, 2] {
                    let x = (0..<(h * w * c)).map { _ in Float.random(in: -3...3, using: &rng) }
                    let wt = (0..<(9 * c)).map { _ in Float.random(in: -1...1, using: &rng) } // [ky][kx][c]
                    let bias: [Float]? = stride == 1 ? (0..<c).map { _ in Float.random(in: -1...1, using: &rng) } : nil
                    let oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1
                    var out = [Float](repeating: .nan, count: oh * ow * c + 4)
                    XCTAssertEqual(hydra_depthwise3x3(x, h, w, c, stride, wt, bias, -4, 4, &out, pool), 0)
                    XCTAssertTrue(out.suffix(4).allSatisfy(\.isNaN), "wrote past the end")
                    for y in 0..<oh { for xx in 0..<ow { for k in 0..<c {
                        var want = Double(bias?[k] ?? 0)
                        for ky in 0..<3 { for kx in 0..<3 {
                            let sy = stride * y + ky - 1, sx = stride * xx + kx - 1
                            guard sy >= 0, sy < h, sx >= 0, sx < w else { continue }
                            want += Double(x[(sy * w + sx) * c + k]) * Double(wt[(ky * 3 + kx) * c + k])
                        } }
                        want = min(max(want, -4), 4)
                        XCTAssertEqual(Double(out[(y * ow + xx) * c + k]), want, accuracy: 1e-5,
                                       "\(h)x\(w)x\(c) stride \(stride) at (\(xx),\(y),\(k))")
                    } } }
                }
            }
            var out = [Float](repeating: 0, count: 64)
            XCTAssertEqual(hydra_depthwise3x3(out, 1, 1, 8, 1, out, nil, 0, 6, &out, nil), -1, "channels must be a multiple of 16")
            XCTAssertEqual(hydra_depthwise3x3(out, 1, 1, 16, 3, out, nil, 0, 6, &out, nil), -1, "stride 1 or 2 only")
        }
    }

    /// The allocator's sharing swaps an operator's buffer only when that is certainly safe.
    func testPackedWeightSharingRules() throws {
        let a = hydra_xnn_allocator()!.pointee
        func alloc(_ n: Int, fill: UInt8) -> UnsafeMutableRawPointer {
            let p = a.aligned_allocate(nil, 64, n)!
            p.initializeMemory(as: UInt8.self, repeating: fill, count: n)
            return p
        }
        let before = hydra_xnn_aligned_bytes()
        let op = alloc(256, fill: 0), fresh = alloc(1000, fill: 7), shared = alloc(1000, fill: 7)
        let other = alloc(1000, fill: 8), shorter = alloc(999, fill: 7)
        XCTAssertEqual(hydra_xnn_aligned_bytes() - before, 256 + 3 * 1000 + 999)
        let slots = op.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        XCTAssertEqual(hydra_xnn_share(op, fresh, shared), -3, "the operator does not hold the buffer")
        slots[3] = fresh
        XCTAssertEqual(hydra_xnn_share(op, fresh, other), -2, "different bytes")
        XCTAssertEqual(hydra_xnn_share(op, fresh, shorter), -1, "different size")
        slots[5] = fresh + 16
        XCTAssertEqual(hydra_xnn_share(op, fresh, shared), -4, "a pointer into the buffer cannot be moved")
        slots[5] = fresh
        XCTAssertEqual(hydra_xnn_share(op, fresh, shared), -3, "held twice")
        slots[5] = nil
        XCTAssertEqual(hydra_xnn_share(op, fresh, shared), 0)
        XCTAssertEqual(slots[3], shared)
        XCTAssertEqual(hydra_xnn_aligned_bytes() - before, 256 + 2 * 1000 + 999, "the fresh copy is freed")
        a.aligned_deallocate(nil, shared) // the operator's reference
        XCTAssertEqual(hydra_xnn_aligned_bytes() - before, 256 + 2 * 1000 + 999, "still referenced by its first owner")
        a.aligned_deallocate(nil, shared)
        for p in [op, other, shorter] { a.aligned_deallocate(nil, p) }
        XCTAssertEqual(hydra_xnn_aligned_bytes(), before)
    }

    func testDispatchNamesAnInstructionSet() {
        forEachISA { isa in
            XCTAssertEqual(String(cString: hydra_kernels_isa()), isa, "the forced clone set is the one reported")
            XCTAssertEqual(hydra_kernels_set_isa("avx1024"), -1, "an unknown name is refused")
            XCTAssertEqual(String(cString: hydra_kernels_isa()), isa, "a refused name changes nothing")
        }
    }
}
