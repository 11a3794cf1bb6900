import Foundation
import HydraEngine
import HydraImage
import HydraOutputs

/// `hydra bench --frame F --png`: what each picture output costs to encode, by zlib level and row filters.
extension BenchCommand {
    static let sweepLevels = [1, 3, 6, 9]
    static let sweepFilters: [(String, PNGCodec.Filters)] = [
        ("libpng default", .libpngDefault), ("none", .none), ("sub", .sub), ("up", .up), ("paeth", .paeth),
        ("adaptive (all five)", .all),
    ]

    func runPNGSweep(_ path: String) throws {
        let image = try ImageDecoder.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        let model = try ModelLoading.load(self.model)
        let replica = try ModelReplica(model: model, threads: threads)
        let p = try image.pixels.withUnsafeBufferPointer { try replica.run(rgb: $0, width: image.width, height: image.height) }
        let dense = Upsampler(threads: threads).upsample(p, width: image.width, height: image.height)
        let colours = model.info.colours
        let pictures: [(String, PNGCodec.Layout, [UInt8])] = [
            ("segmentation (palette)", .palette(colours: colours.map { ($0[0], $0[1], $0[2]) }), dense.labels),
            ("overlay (RGB)", .rgb8, ImageOutputs.overlay(image, labels: dense.labels, colours: colours).pixels),
            ("depth png16 (grey 16-bit)", .grey16, DepthOutputs.png16Samples(dense.depth, scale: DepthOutputs.defaultPNG16Scale)),
            ("depth colour (RGB)", .rgb8, DepthOutputs.colourise(dense.depth, range: DepthOutputs.autoRange(dense.depth))),
        ]
        var rows: [[String: Any]] = []
        if !json {
            print("PNG encoding of \(path) (\(image.width)x\(image.height)), median of \(runs) runs; * = the service's setting")
            print("| output | level | filters | ms | bytes |")
            print("|---|---|---|---|---|")
        }
        let untimed = warmup > 0 ? 1 : 0 // one warm-up encode per setting at most: level 9 is slow
        for (name, layout, samples) in pictures {
            for level in Self.sweepLevels {
                for (filterName, filters) in Self.sweepFilters {
                    let options = PNGCodec.Options(level: level, filters: filters)
                    var times: [Double] = []
                    var size = 0
                    for i in 0..<untimed + runs {
                        let t0 = MonotonicClock.now()
                        size = try PNGCodec.encode(width: image.width, height: image.height, layout: layout, samples: samples,
                                                   options: options).count
                        if i >= untimed { times.append((MonotonicClock.now() - t0) * 1e3) }
                    }
                    let median = Self.percentiles(&times).median
                    let chosen = options == .outputs
                    rows.append(["output": name, "level": level, "filters": filterName, "median_ms": median, "bytes": size,
                                 "service_setting": chosen])
                    if !json {
                        print(String(format: "| %@ | %d | %@ | %.2f | %d |", name, level, filterName + (chosen ? " *" : ""), median, size))
                    }
                }
            }
        }
        if json {
            let obj: [String: Any] = ["frame": path, "width": image.width, "height": image.height, "runs": runs, "rows": rows]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        }
    }
}
