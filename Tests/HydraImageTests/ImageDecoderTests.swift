import Foundation
import XCTest
@testable import HydraImage

final class ImageDecoderTests: XCTestCase {
    func fixture(_ name: String) throws -> [UInt8] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
        return [UInt8](try Data(contentsOf: url))
    }

    /// Decodes `name` and compares with the expected RGB written beside it by make_fixtures.py.
    func check(_ name: String, tolerance: Int = 0, file: StaticString = #filePath, line: UInt = #line) throws {
        let image = try ImageDecoder.decode(try fixture(name))
        XCTAssertEqual(image.width, 13, file: file, line: line)
        XCTAssertEqual(image.height, 7, file: file, line: line)
        let expected = try fixture(name + ".rgb")
        XCTAssertEqual(image.pixels.count, expected.count, file: file, line: line)
        let worst = zip(image.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(name): largest sample difference \(worst)", file: file, line: line)
    }

    func testPNGVariantsDecodeExactly() throws {
        for name in ["rgb8.png", "rgb16.png", "grey8.png", "grey16.png", "grey1.png", "palette.png",
                     "rgba8.png", "greyalpha.png", "interlaced.png"] {
            try check(name)
        }
    }

    /// The compressed stream goes on after the last row, into a block no inflater accepts: decoding
    /// stops at the last row, so the pixels come out and the rest is never inflated.
    func testPNGDecodingStopsAtTheLastRow() throws {
        for name in ["trailing.png", "trailing_interlaced.png"] { try check(name) }
    }

    func testJPEGVariantsDecode() throws {
        // Same libjpeg family as the reference decoder; allow rounding differences of the IDCT.
        for name in ["baseline.jpg", "progressive.jpg", "grey.jpg"] { try check(name, tolerance: 2) }
        // Pillow converts CMYK with its own formula; ours is the Adobe-inverted product.
        try check("cmyk.jpg", tolerance: 3)
    }

    func testCorruptImagesGiveTypedErrors() throws {
        for name in ["truncated.png", "badcrc.png", "truncated.jpg"] {
            XCTAssertThrowsError(try ImageDecoder.decode(try fixture(name)), name) { error in
                guard case ImageError.corrupt = error else { return XCTFail("\(name): \(error)") }
            }
        }
        XCTAssertThrowsError(try ImageDecoder.decode(try fixture("garbage.bin"))) {
            XCTAssertEqual($0 as? ImageError, .unknownFormat)
        }
        XCTAssertThrowsError(try ImageDecoder.decode([])) { XCTAssertEqual($0 as? ImageError, .empty) }
        // Every prefix of a valid file fails cleanly (no crash, no hang). PNG decoding stops at the
        // last row, so a PNG prefix that holds every row may decode: then to the whole file's pixels.
        let png = try fixture("rgb8.png"), jpg = try fixture("baseline.jpg")
        let whole = try ImageDecoder.decode(png)
        for n in stride(from: 1, to: png.count - 1, by: 7) {
            if let image = try? ImageDecoder.decode(Array(png.prefix(n))) {
                XCTAssertEqual(image.pixels, whole.pixels, "prefix of \(n) bytes")
                XCTAssertGreaterThan(n, png.count - 20, "only the IDAT checksum and IEND may be missing")
            }
        }
        for n in stride(from: 1, to: jpg.count - 1, by: 7) {
            XCTAssertThrowsError(try ImageDecoder.decode(Array(jpg.prefix(n))))
        }
    }

    func testPixelLimitIsCheckedBeforeDecoding() throws {
        XCTAssertThrowsError(try ImageDecoder.decode(try fixture("bomb.png"))) { error in
            XCTAssertEqual(error as? ImageError, .tooLarge(width: 100000, height: 100000, limit: 40_000_000))
        }
        XCTAssertThrowsError(try ImageDecoder.decode(try fixture("rgb8.png"), limits: ImageLimits(maxPixels: 90))) {
            XCTAssertEqual($0 as? ImageError, .tooLarge(width: 13, height: 7, limit: 90))
        }
        XCTAssertThrowsError(try ImageDecoder.decode(try fixture("baseline.jpg"), limits: ImageLimits(maxPixels: 90))) {
            XCTAssertEqual($0 as? ImageError, .tooLarge(width: 13, height: 7, limit: 90))
        }
        XCTAssertNoThrow(try ImageDecoder.decode(try fixture("rgb8.png"), limits: ImageLimits(maxPixels: 91)))
    }

    func testPNGEncodeRoundTrips() throws {
        let original = try ImageDecoder.decode(try fixture("rgb8.png"))
        let png = try PNGCodec.encode(width: 13, height: 7, layout: .rgb8, samples: original.pixels)
        XCTAssertEqual(try ImageDecoder.decode(png), original)

        let ids = (0..<(13 * 7)).map { UInt8($0 % 3) }
        let colours: [(UInt8, UInt8, UInt8)] = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
        let pal = try PNGCodec.encode(width: 13, height: 7, layout: .palette(colours: colours), samples: ids)
        let header = try PNGCodec.header(pal)
        XCTAssertEqual(header.colorType, 3)
        XCTAssertEqual(header.bitDepth, 8)
        let decoded = try ImageDecoder.decode(pal)
        for i in 0..<ids.count {
            let c = colours[Int(ids[i])]
            XCTAssertEqual([decoded.pixels[3 * i], decoded.pixels[3 * i + 1], decoded.pixels[3 * i + 2]], [c.0, c.1, c.2])
        }
    }

    /// Every zlib level and row-filter choice is lossless; the filters really change what is written.
    func testPNGLevelsAndFiltersAreLossless() throws {
        // Gradients with noise: the row filters compress them very differently.
        var rng = SystemRandomNumberGenerator()
        let (w, h) = (64, 48)
        let pixels = (0..<(w * h)).flatMap { i -> [UInt8] in
            let (x, y) = (i % w, i / w)
            return [UInt8(x * 3), UInt8(y * 5), UInt8((x + y + Int.random(in: 0...3, using: &rng)) & 255)]
        }
        let original = RGBImage(width: w, height: h, pixels: pixels)
        var sizes: Set<Int> = []
        for level in [0, 1, 6, 9] {
            for filters: PNGCodec.Filters in [.libpngDefault, .none, .sub, .up, .average, .paeth, .all] {
                let png = try PNGCodec.encode(width: w, height: h, layout: .rgb8, samples: original.pixels,
                                              options: PNGCodec.Options(level: level, filters: filters))
                XCTAssertEqual(try ImageDecoder.decode(png), original, "level \(level), filters \(filters.rawValue)")
                if level == 9 { sizes.insert(png.count) }
            }
        }
        XCTAssertGreaterThan(sizes.count, 1, "the filter choice must reach libpng")
    }

    func testJPEGEncodeRoundTrips() throws {
        let original = try ImageDecoder.decode(try fixture("baseline.jpg"))
        let jpg = try JPEGCodec.encode(original, quality: 100)
        let back = try ImageDecoder.decode(jpg)
        XCTAssertEqual(back.width, 13)
        let worst = zip(back.pixels, original.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 12)
    }
}
