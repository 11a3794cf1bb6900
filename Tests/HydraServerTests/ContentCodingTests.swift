import Foundation
import XCTest
@testable import HydraServer

final class ContentCodingTests: XCTestCase {
    private let text = Array((0..<20_000).map { "row \($0 % 97) of a body that compresses;" }.joined().utf8)

    func testEachCodingRoundTrips() throws {
        for coding in [ContentCoding.gzip, .deflate] {
            let packed = coding.encode(text)
            XCTAssertLessThan(packed.count, text.count / 5)
            XCTAssertEqual(try coding.decode(packed, limit: text.count), text)
        }
        XCTAssertEqual(ContentCoding.gzip.encode(text).prefix(2), [0x1F, 0x8B])
        // deflate is zlib-wrapped; a raw deflate stream (what some clients send) is taken too.
        let zlib = ContentCoding.deflate.encode(text)
        XCTAssertEqual(try ContentCoding.deflate.decode(Array(zlib.dropFirst(2).dropLast(4)), limit: text.count), text)
    }

    func testInflatingStopsAtTheLimit() {
        let bomb = ContentCoding.gzip.encode([UInt8](repeating: 0, count: 8 << 20))
        XCTAssertLessThan(bomb.count, 64_000)  // 8 MiB in 36 KB at level 1
        XCTAssertThrowsError(try ContentCoding.gzip.decode(bomb, limit: 1 << 20)) { e in
            XCTAssertEqual((e as? Problem)?.status, 413)
        }
        XCTAssertEqual(try ContentCoding.gzip.decode(bomb, limit: 8 << 20).count, 8 << 20)
    }

    func testBrokenStreamsAre400() {
        let packed = ContentCoding.gzip.encode(text)
        for bad in [Array(packed.dropLast(30)), packed + [1, 2, 3], Array("not gzip".utf8), [], Array(packed.prefix(10))] {
            XCTAssertThrowsError(try ContentCoding.gzip.decode(bad, limit: 1 << 30)) { e in
                XCTAssertEqual((e as? Problem)?.status, 400, "\(bad.count) bytes")
            }
        }
    }

    func testContentEncodingHeader() throws {
        XCTAssertEqual(try ContentCoding.of(contentEncoding: nil), .identity)
        XCTAssertEqual(try ContentCoding.of(contentEncoding: " identity "), .identity)
        XCTAssertEqual(try ContentCoding.of(contentEncoding: "GZIP"), .gzip)
        XCTAssertEqual(try ContentCoding.of(contentEncoding: "x-gzip"), .gzip)
        XCTAssertEqual(try ContentCoding.of(contentEncoding: "deflate"), .deflate)
        for bad in ["br", "gzip, gzip", "gzip, br", "compress"] {
            XCTAssertThrowsError(try ContentCoding.of(contentEncoding: bad)) { e in XCTAssertEqual((e as? Problem)?.status, 415) }
        }
    }

    func testAcceptEncodingNegotiation() {
        XCTAssertEqual(ContentCoding.preferred(acceptEncoding: nil), .identity)
        XCTAssertEqual(ContentCoding.preferred(acceptEncoding: "gzip"), .gzip)
        XCTAssertEqual(ContentCoding.preferred(acceptEncoding: "deflate, gzip;q=0.5"), .gzip)
        XCTAssertEqual(ContentCoding.preferred(acceptEncoding: "gzip;q=0, deflate"), .deflate)
        XCTAssertEqual(ContentCoding.preferred(acceptEncoding: "br"), .identity)
        XCTAssertEqual(ContentCoding.preferred(acceptEncoding: "*"), .gzip)
        XCTAssertEqual(ContentCoding.preferred(acceptEncoding: "*;q=0"), .identity)
    }

    func testSmallOrIncompressibleAnswersStayAsTheyAre() {
        let small = HTTPResponse(status: 200, headers: [], body: Array("{}".utf8))
        XCTAssertEqual(small.encoded(.gzip).body, small.body)
        var noise = [UInt8](repeating: 0, count: 4096)
        var x: UInt32 = 1
        for i in noise.indices { x = x &* 1_664_525 &+ 1_013_904_223; noise[i] = UInt8(x >> 24) }
        let r = HTTPResponse(status: 200, headers: [], body: noise).encoded(.gzip)
        XCTAssertEqual(r.body, noise)
        XCTAssertFalse(r.headers.contains { $0.0 == "Content-Encoding" })
        let big = HTTPResponse(status: 200, headers: [], body: text).encoded(.deflate)
        XCTAssertTrue(big.headers.contains { $0 == ("Content-Encoding", "deflate") })
    }
}
