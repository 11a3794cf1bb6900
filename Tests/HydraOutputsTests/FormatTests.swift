import Foundation
import HydraImage
import HydraWeights
import XCTest
@testable import HydraOutputs

final class FormatTests: XCTestCase {
    /// A 6x4 output: class = column / 2, depth = 1 + row + column / 10.
    func dense(normals: Bool = false) -> DenseOutputs {
        let (w, h) = (6, 4)
        var labels = [UInt8](), depth = [Float]()
        for v in 0..<h { for u in 0..<w { labels.append(UInt8(u / 2)); depth.append(1 + Float(v) + Float(u) / 10) } }
        let n: [Float]? = normals ? (0..<(3 * w * h)).map { $0 < 2 * w * h ? 0 : 1 } : nil
        return DenseOutputs(width: w, height: h, labels: labels, depth: depth, normals: n)
    }

    let colours: [[UInt8]] = [[10, 20, 30], [40, 50, 60], [70, 80, 90]]

    func testSegmentationPNGIsAPaletteLabelMap() throws {
        let d = dense()
        let png = try ImageOutputs.segmentationPNG(d, colours: colours)
        let raw = try PNGCodec.decodeRaw(png)
        XCTAssertEqual([raw.width, raw.height, raw.channels, raw.bitDepth], [6, 4, 1, 8])
        XCTAssertEqual(raw.palette, colours)
        XCTAssertEqual(raw.samples.map { UInt8($0) }, d.labels)
        // And it is a picture: decoding to RGB gives the class colours.
        let rgb = try ImageDecoder.decode(png)
        XCTAssertEqual(Array(rgb.pixels[(3 * 5)..<(3 * 5 + 3)]), colours[2])
    }

    func testOverlayBlendsHalfAndHalf() {
        let image = RGBImage(width: 6, height: 4, pixels: [UInt8](repeating: 200, count: 72))
        let o = ImageOutputs.overlay(image, labels: dense().labels, colours: colours)
        XCTAssertEqual(Array(o.pixels.prefix(3)), [105, 110, 115])
    }

    func testDepthFormatsRoundTrip() throws {
        let d = dense()
        var depth = d.depth
        depth[0] = 0 // no depth
        depth[1] = 300 // beyond png16's range at scale 256
        let npy = try DepthOutputs.encode(depth, width: 6, height: 4, format: .npy)
        let back = try NPY.decode(npy.bytes)
        XCTAssertEqual(back.shape, [4, 6])
        XCTAssertEqual(back.values, depth)

        let f32 = try DepthOutputs.encode(depth, width: 6, height: 4, format: .f32)
        XCTAssertEqual(f32.bytes.count, 24 * 4)
        let floats = f32.bytes.withUnsafeBytes { raw in (0..<24).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) } }
        XCTAssertEqual(floats, depth)

        for scale in [256.0, 800.0, 5000.0] {
            let png = try DepthOutputs.encode(depth, width: 6, height: 4, format: .png16, png16Scale: scale)
            XCTAssertEqual(png.scale, scale)
            let raw = try PNGCodec.decodeRaw(png.bytes)
            XCTAssertEqual([raw.channels, raw.bitDepth], [1, 16])
            XCTAssertEqual(raw.samples[0], 0, "0 means no depth")
            XCTAssertEqual(raw.samples[1], 65535, "clipped")
            for i in 2..<24 {
                XCTAssertEqual(raw.samples[i], UInt16((Double(depth[i]) * scale).rounded()))
                XCTAssertEqual(Double(raw.samples[i]) / scale, Double(depth[i]), accuracy: 0.5 / scale)
            }
        }

        let colour = try DepthOutputs.encode(d.depth, width: 6, height: 4, format: .colour, colourRange: 1...5)
        XCTAssertEqual(colour.range, 1...5)
        let rgb = try ImageDecoder.decode(colour.bytes)
        let near = Array(rgb.pixels.prefix(3)), far = Array(rgb.pixels.suffix(3))
        func luma(_ c: [UInt8]) -> Double { 0.2126 * Double(c[0]) + 0.7152 * Double(c[1]) + 0.0722 * Double(c[2]) }
        XCTAssertGreaterThan(luma(near), luma(far) + 100, "near is light, far is dark")
        XCTAssertEqual(DepthOutputs.colour(0, range: 1...5).0, 0, "no depth is black")
        XCTAssertEqual(DepthOutputs.colour(.nan, range: 1...5).1, 0, "no depth is black")
    }

    func testDepthColourMapIsOrderedInInverseDepth() {
        let table = DepthColourMap.table
        XCTAssertEqual(table.count, 256)
        // OKLab lightness of an 8-bit sRGB colour.
        func lightness(_ c: [UInt8]) -> Double {
            let v = c.map { x -> Double in
                let e = Double(x) / 255
                return e <= 0.04045 ? e / 12.92 : pow((e + 0.055) / 1.055, 2.4)
            }
            let l = 0.4122214708 * v[0] + 0.5363325363 * v[1] + 0.0514459929 * v[2]
            let m = 0.2119034982 * v[0] + 0.6806995451 * v[1] + 0.1073969566 * v[2]
            let s = 0.0883024619 * v[0] + 0.2817188376 * v[1] + 0.6299787005 * v[2]
            return 0.2104542553 * cbrt(l) + 0.7936177850 * cbrt(m) - 0.0040720468 * cbrt(s)
        }
        // Each entry rises by 0.0024; 8-bit rounding moves lightness by up to about 0.002.
        for i in 1..<256 { XCTAssertGreaterThan(lightness(table[i]), lightness(table[i - 1]) - 0.001, "entry \(i)") }
        for i in 4..<256 { XCTAssertGreaterThan(lightness(table[i]), lightness(table[i - 4]) + 0.005, "lightness rises towards near, entry \(i)") }
        XCTAssertGreaterThan(lightness(table[0]), 0.3, "the far end stays apart from no-depth black")
        // Inverse depth: over 5...80 m, 10 m sits at (1/10 - 1/80) / (1/5 - 1/80) = 0.467, not at 0.067 as on a linear ramp.
        XCTAssertEqual(DepthColourMap.position(10, range: 5...80), 0.4667, accuracy: 1e-3)
        XCTAssertEqual(DepthColourMap.position(5, range: 5...80), 1)
        XCTAssertEqual(DepthColourMap.position(200, range: 5...80), 0)
        let ticks = DepthColourMap.ticks(range: 6.3...102)
        XCTAssertEqual(ticks.first?.metres, 6.3)
        XCTAssertEqual(ticks.last?.metres, 102)
        XCTAssertTrue(ticks.map(\.metres).contains(10) && ticks.map(\.metres).contains(20), "\(ticks)")
        XCTAssertLessThanOrEqual(ticks.count, 6)
        XCTAssertEqual(ticks.map(\.position), ticks.map(\.position).sorted(by: >), "farther ticks sit lower on the map")
    }

    func testPointCloudMatchesHandComputedPoints() throws {
        let d = dense()
        let image = RGBImage(width: 6, height: 4, pixels: (0..<72).map { UInt8($0) })
        var o = PointCloudOptions(intrinsics: Intrinsics(fx: 2, fy: 4, cx: 2.5, cy: 1.5, width: 6, height: 4))
        var pc = PointCloud(d, image: image, classColours: colours, options: o)
        XCTAssertEqual(pc.count, 24)
        // Pixel (u=4, v=3): depth 1 + 3 + 0.4 = 4.4; X = (4 - 2.5) * 4.4 / 2 = 3.3; Y = (3 - 1.5) * 4.4 / 4 = 1.65.
        let i = 3 * 6 + 4
        XCTAssertEqual(pc.positions[3 * i], 3.3, accuracy: 1e-5)
        XCTAssertEqual(pc.positions[3 * i + 1], 1.65, accuracy: 1e-5)
        XCTAssertEqual(pc.positions[3 * i + 2], 4.4, accuracy: 1e-6)
        XCTAssertEqual(Array(pc.colours[(3 * i)..<(3 * i + 3)]), [66, 67, 68])
        XCTAssertEqual(pc.labels[i], 2)
        // Pixel (0, 0): X = -2.5 * 1 / 2, Y = -1.5 * 1 / 4.
        XCTAssertEqual(Array(pc.positions.prefix(3)), [-1.25, -0.375, 1])

        o.stride = 2
        o.dropClasses = [1]
        o.minDepth = 1.5
        o.maxDepth = 3.5
        o.colouring = .class
        pc = PointCloud(d, image: image, classColours: colours, options: o)
        // Kept: rows 0, 2 x columns 0, 4 (column 2 is class 1); depth in 1.5...3.5 leaves row 2 only.
        XCTAssertEqual(pc.count, 2)
        XCTAssertEqual(pc.labels, [0, 2])
        XCTAssertEqual(Array(pc.colours.prefix(3)), colours[0])
        XCTAssertEqual(pc.positions[2], 3)
    }

    func parsePLY(_ bytes: [UInt8]) -> (header: [String], body: ArraySlice<UInt8>) {
        let marker = Array("end_header\n".utf8)
        var i = 0
        while !bytes[i..<(i + marker.count)].elementsEqual(marker) { i += 1 }
        let header = String(decoding: bytes[0..<i], as: UTF8.self).split(separator: "\n").map(String.init)
        return (header, bytes[(i + marker.count)...])
    }

    func testPLYBinaryAndASCIIAgree() throws {
        for normals in [false, true] {
            let d = dense(normals: normals)
            let image = RGBImage(width: 6, height: 4, pixels: (0..<72).map { UInt8($0) })
            let pc = PointCloud(d, image: image, classColours: colours,
                                options: PointCloudOptions(intrinsics: Intrinsics(fx: 2, fy: 4, cx: 2.5, cy: 1.5, width: 6, height: 4)))
            let binary = parsePLY(PLYWriter.encode(pc, encoding: .binary, comments: ["test"]))
            let ascii = parsePLY(PLYWriter.encode(pc, encoding: .ascii))
            XCTAssertEqual(binary.header[1], "format binary_little_endian 1.0")
            XCTAssertEqual(ascii.header[1], "format ascii 1.0")
            XCTAssertTrue(binary.header.contains("element vertex 24"))
            XCTAssertEqual(binary.header.contains("property float nx"), normals)
            XCTAssertEqual(binary.header.suffix(4), ["property uchar red", "property uchar green", "property uchar blue", "property uchar label"])
            let stride = normals ? 28 : 16
            XCTAssertEqual(binary.body.count, 24 * stride)
            let lines = String(decoding: ascii.body, as: UTF8.self).split(separator: "\n")
            XCTAssertEqual(lines.count, 24)
            let b = Array(binary.body)
            for (n, line) in lines.enumerated() {
                let fields = line.split(separator: " ")
                let floats = normals ? 6 : 3
                for k in 0..<floats {
                    let v = b.withUnsafeBytes { Float(bitPattern: $0.loadUnaligned(fromByteOffset: n * stride + 4 * k, as: UInt32.self)) }
                    XCTAssertEqual(Float(String(fields[k])), v)
                }
                for k in 0..<4 { XCTAssertEqual(UInt8(String(fields[floats + k])), b[n * stride + 4 * floats + k]) }
            }
        }
    }

    func testCameraDefaultsScaleToTheImage() {
        let kitti = Preset.kitti.intrinsics
        let (k, note) = CameraResolver.resolve(model: kitti, width: 1226, height: 370)
        XCTAssertEqual(k.cy, (172.854 + 0.5) * 370 / 375 - 0.5, accuracy: 1e-9)
        XCTAssertLessThan(k.cy, 370, "cy must lie inside a 370-pixel-high image")
        XCTAssertTrue(note.contains("scaled from 1242x375 to 1226x370"))
        let (same, sameNote) = CameraResolver.resolve(model: kitti, width: 1242, height: 375, fx: 700)
        XCTAssertEqual(same.fx, 700)
        XCTAssertEqual(same.cy, 172.854)
        XCTAssertFalse(sameNote.contains("scaled"))
        XCTAssertTrue(sameNote.contains("fx given"))
        XCTAssertEqual(same.fy, 700, "fy follows fx when only fx is given")
    }

    func testCameraKeepsSquarePixelsOnFramesOfAnotherShape() {
        let kitti = Preset.kitti.intrinsics
        // A 4:3 frame did not come from the 3.3:1 KITTI camera: no axis may be stretched to fit.
        let (k, note) = CameraResolver.resolve(model: kitti, width: 640, height: 480)
        XCTAssertEqual(k.fx, k.fy)
        XCTAssertEqual(k.fx, 721.5377 * 640 / 1242, accuracy: 1e-9, "the preset's horizontal field of view")
        XCTAssertEqual(k.cx, 319.5)
        XCTAssertEqual(k.cy, 239.5)
        XCTAssertTrue(note.contains("square pixels"), note)
        let (f, fnote) = CameraResolver.resolve(model: kitti, width: 640, height: 480, horizontalFOV: 90)
        XCTAssertEqual(f.fx, 320, accuracy: 1e-9)
        XCTAssertEqual(f.fy, 320, accuracy: 1e-9)
        XCTAssertTrue(fnote.contains("field of view 90"), fnote)
        let (given, _) = CameraResolver.resolve(model: kitti, width: 640, height: 480, cx: 300, horizontalFOV: 90)
        XCTAssertEqual(given.cx, 300, "explicit values win over the field of view")
    }

    func testSummaryStatisticsPerClass() {
        let info = ModelInfo(preset: .kitti, classNames: ["a", "b", "c"], colours: colours, description: "t", trained: false)
        let (classes, all) = Summary.classStats(dense(), info: info)
        XCTAssertEqual(classes.map(\.pixels), [8, 8, 8])
        XCTAssertEqual(classes[0].share, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(classes[2].depthMinM!, 1.4, accuracy: 1e-6)
        // Class 0 (columns 0-1): depths 1, 1.1, 2, 2.1, 3, 3.1, 4, 4.1; lower median 2.1.
        XCTAssertEqual(classes[0].depthMedianM!, 2.1, accuracy: 1e-6)
        XCTAssertEqual(all!.0, 1)
        XCTAssertEqual(all!.2, 4.5, accuracy: 1e-6)
    }

    func testSelectFindsOrderStatistics() {
        var rng = SystemRandomNumberGenerator()
        for n in [1, 2, 3, 10, 101] {
            let a = (0..<n).map { _ in Float(Int.random(in: 0..<7, using: &rng)) }
            for rank in 0..<n {
                var copy = a
                XCTAssertEqual(Statistics.select(&copy, rank: rank), a.sorted()[rank])
            }
        }
    }
}
