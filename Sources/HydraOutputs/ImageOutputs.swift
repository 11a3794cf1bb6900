import HydraImage

/// Picture outputs: the segmentation map, the overlay, the normals image.
public enum ImageOutputs {
    /// 8-bit palette PNG: pixel values are class ids and the PLTE holds the class colours,
    /// so one file is both a label map for code and a picture for people.
    public static func segmentationPNG(_ d: DenseOutputs, colours: [[UInt8]],
                                       options: PNGCodec.Options = .outputs) throws -> [UInt8] {
        let palette = colours.map { ($0[0], $0[1], $0[2]) }
        return try PNGCodec.encode(width: d.width, height: d.height, layout: .palette(colours: palette),
                                   samples: d.labels, options: options)
    }

    /// The input blended with the class colours (`alpha` of the colour).
    public static func overlay(_ image: RGBImage, labels: [UInt8], colours: [[UInt8]], alpha: Float = 0.5) -> RGBImage {
        precondition(labels.count == image.width * image.height)
        var out = image.pixels
        let a = max(0, min(1, alpha)), b = 1 - a
        for i in labels.indices {
            let c = colours[Int(labels[i])]
            for k in 0..<3 {
                out[3 * i + k] = UInt8((Float(image.pixels[3 * i + k]) * b + Float(c[k]) * a).rounded())
            }
        }
        return RGBImage(width: image.width, height: image.height, pixels: out)
    }

    /// Unit normals as RGB: (n + 1) / 2 * 255 per axis.
    public static func normalsPNG(_ d: DenseOutputs, options: PNGCodec.Options = .outputs) throws -> [UInt8]? {
        guard let n = d.normals else { return nil }
        let plane = d.width * d.height
        var rgb = [UInt8](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            for k in 0..<3 { rgb[3 * i + k] = UInt8(max(0, min(255, ((n[k * plane + i] + 1) * 127.5).rounded()))) }
        }
        return try PNGCodec.encode(width: d.width, height: d.height, layout: .rgb8, samples: rgb, options: options)
    }
}

extension PNGCodec.Options {
    /// What every picture output is written with. `make png` (benchmarks/png.py) measured each output on
    /// KITTI 1226x370 and NYUDv2 640x480 frames: zlib level 1 with the "up" row filter gives the lowest
    /// encode time + transfer time for all of them at 1 Gbit/s and at 100 Mbit/s (libpng's level-6 default
    /// took 4-8x longer, e.g. 75 ms instead of 12 ms for a KITTI png16 depth map, for files 5-30 % smaller).
    public static let outputs = PNGCodec.Options(level: 1, filters: .up)
}
