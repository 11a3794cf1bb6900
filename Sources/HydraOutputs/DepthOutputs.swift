import HydraImage

/// How depth is delivered.
public enum DepthFormat: String, Sendable, CaseIterable, Codable {
    /// NumPy float32 [H, W], metres (the default).
    case npy
    /// Raw little-endian float32, row-major, metres; width and height travel beside it.
    case f32
    /// 16-bit grey PNG of round(depth x scale), 0 = no depth (KITTI's convention, scale 256).
    case png16
    /// A colourised PNG for people: inverse depth on a perceptual map, near light yellow, far dark
    /// violet, over a stated range (the summary's depth_colour_range_m and legend).
    case colour

    public var contentType: String {
        switch self {
        case .npy: return "application/x-npy"
        case .f32: return "application/octet-stream"
        case .png16, .colour: return "image/png"
        }
    }

    /// File name suffix after the image stem.
    public var fileSuffix: String {
        switch self {
        case .npy: return "_depth.npy"
        case .f32: return "_depth.f32"
        case .png16: return "_depth.png"
        case .colour: return "_depth_colour.png"
        }
    }
}

/// Encoded depth and what a reader needs to interpret it.
public struct EncodedDepth: Sendable {
    public var bytes: [UInt8]
    public var format: DepthFormat
    public var width: Int, height: Int
    /// png16: metres = value / scale.
    public var scale: Double?
    /// colour: metres at the near (light) and the far (dark) end.
    public var range: ClosedRange<Float>?
}

public enum DepthOutputs {
    public static let defaultPNG16Scale = 256.0

    public static func encode(_ depth: [Float], width: Int, height: Int, format: DepthFormat,
                              png16Scale: Double = defaultPNG16Scale, colourRange: ClosedRange<Float>? = nil,
                              png: PNGCodec.Options = .outputs) throws -> EncodedDepth {
        precondition(depth.count == width * height)
        var out = EncodedDepth(bytes: [], format: format, width: width, height: height)
        switch format {
        case .npy:
            out.bytes = NPY.encode(depth, shape: [height, width])
        case .f32:
            out.bytes.reserveCapacity(depth.count * 4)
            for v in depth { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.bytes.append(contentsOf: $0) } }
        case .png16:
            out.bytes = try PNGCodec.encode(width: width, height: height, layout: .grey16,
                                            samples: png16Samples(depth, scale: png16Scale), options: png)
            out.scale = png16Scale
        case .colour:
            let range = colourRange ?? autoRange(depth)
            out.bytes = try PNGCodec.encode(width: width, height: height, layout: .rgb8, samples: colourise(depth, range: range),
                                            options: png)
            out.range = range
        }
        return out
    }

    /// The png16 format's samples: big-endian 16-bit values, as PNG stores them.
    public static func png16Samples(_ depth: [Float], scale: Double) -> [UInt8] {
        var samples = [UInt8](repeating: 0, count: depth.count * 2)
        for (i, d) in depth.enumerated() {
            let v = png16Value(d, scale: scale)
            samples[2 * i] = UInt8(v >> 8)
            samples[2 * i + 1] = UInt8(v & 0xFF)
        }
        return samples
    }

    /// round(d x scale) in 1...65535; 0 for no depth (non-finite or <= 0).
    static func png16Value(_ d: Float, scale: Double) -> UInt16 {
        guard d.isFinite, d > 0 else { return 0 }
        let v = (Double(d) * scale).rounded()
        return UInt16(max(1, min(65535, v)))
    }

    /// The 2nd to 98th percentile of valid depth, so a few outliers do not wash out the picture.
    public static func autoRange(_ depth: [Float]) -> ClosedRange<Float> {
        var valid = depth.filter { $0.isFinite && $0 > 0 }
        guard !valid.isEmpty else { return 0...1 }
        let lo = Statistics.select(&valid, rank: Int(Double(valid.count - 1) * 0.02))
        let hi = Statistics.select(&valid, rank: Int(Double(valid.count - 1) * 0.98))
        return hi > lo ? lo...hi : lo...(lo + 1)
    }

    /// RGB colour of `d` on `DepthColourMap` (inverse depth over the range); black where there is no depth.
    public static func colour(_ d: Float, range: ClosedRange<Float>) -> (UInt8, UInt8, UInt8) {
        guard d.isFinite, d > 0 else { return (0, 0, 0) }
        let c = DepthColourMap.table[Int((DepthColourMap.position(d, range: range) * 255).rounded())]
        return (c[0], c[1], c[2])
    }

    public static func colourise(_ depth: [Float], range: ClosedRange<Float>) -> [UInt8] {
        var rgb = [UInt8](repeating: 0, count: depth.count * 3)
        for (i, d) in depth.enumerated() {
            let c = colour(d, range: range)
            rgb[3 * i] = c.0; rgb[3 * i + 1] = c.1; rgb[3 * i + 2] = c.2
        }
        return rgb
    }
}

enum Statistics {
    /// The element of the given rank (0-based) in ascending order; reorders `a` (quickselect).
    static func select(_ a: inout [Float], rank: Int) -> Float {
        precondition(!a.isEmpty && rank >= 0 && rank < a.count)
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let pivot = a[(lo + hi) / 2]
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if rank <= j { hi = j } else if rank >= i { lo = i } else { return a[rank] }
        }
        return a[rank]
    }
}
