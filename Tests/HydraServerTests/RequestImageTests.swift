@testable import HydraServer
import XCTest

final class RequestImageTests: XCTestCase {
    private let type = "multipart/form-data; boundary=XyZ"

    private func form(_ parts: [(headers: String, body: String)]) -> [UInt8] {
        Array((parts.map { "--XyZ\r\n\($0.headers)\r\n\r\n\($0.body)\r\n" }.joined() + "--XyZ--\r\n").utf8)
    }

    private func status(_ body: [UInt8], type: String? = nil) -> Int? {
        do { _ = try RequestImage.bytes(body: body, contentType: type ?? self.type) } catch let p as Problem { return p.status } catch {
            return -1
        }
        return nil
    }

    func testTheImageFieldIsFoundAmongOthers() throws {
        let body = form([("Content-Disposition: form-data; name=\"note\"", "hi"),
                         ("Content-Disposition: form-data; name=\"image\"; filename=\"caf\u{e9}.png\"\r\nContent-Type: image/png", "PNGDATA")])
        XCTAssertEqual(try RequestImage.bytes(body: body, contentType: type), Array("PNGDATA".utf8))
        XCTAssertEqual(try RequestImage.bytes(body: [1, 2, 3], contentType: "image/png"), [1, 2, 3])
    }

    func testMalformedBodiesAreRefusedWithTheirStatus() {
        XCTAssertEqual(status(form([("Content-Disposition: form-data; name=\"note\"", "hi")])), 422, "no image field")
        let two = form([("Content-Disposition: form-data; name=\"image\"", "a"), ("Content-Disposition: form-data; name=\"image\"", "b")])
        XCTAssertEqual(status(two), 422, "two images")
        XCTAssertEqual(status(form([("Content-Disposition: form-data; name=\"image\"", "")])), 422, "empty image")
        XCTAssertEqual(status(Array("--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc".utf8)), 400, "no closing boundary")
        XCTAssertEqual(status(Array("garbage".utf8)), 400, "no boundary at all")
        XCTAssertEqual(status([1], type: "multipart/form-data"), 400, "no boundary parameter")
    }

    /// Such a name trapped MultipartKit 4.7.1 (found by the http fuzz target, Fuzz/regressions/http).
    func testANonASCIIPartHeaderNameIsA400NotACrash() {
        var body = Array("--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\nX-".utf8)
        body += [0xC3, 0xA9]
        body += Array(": v\r\n\r\nabc\r\n--XyZ--\r\n".utf8)
        XCTAssertEqual(status(body), 400)
        // The same bytes in a header value are fine (UTF-8 filenames).
        XCTAssertEqual(status(form([("Content-Disposition: form-data; name=\"image\"; filename=\"\u{e9}\"", "x")])), nil)
    }

    func testFramingFollowsRFC2046() throws {
        // A preamble, padding after a delimiter, a folded header, an epilogue; CRLF inside content stays.
        let body = Array(("preamble\r\n--XyZ  \r\nContent-Disposition: form-data;\r\n name=\"image\"\r\n\r\n"
            + "line1\r\n--XyZnot\r\n--XyZ--\r\nepilogue").utf8)
        XCTAssertEqual(status(body), 400, "a delimiter that goes on after the boundary is not one")
        let good = Array(("preamble\r\n--XyZ \t\r\nContent-Disposition: form-data;\r\n name=\"image\"\r\n\r\n"
            + "a\r\nb\r\n--XyZ--\r\nepilogue").utf8)
        let form = try FormData(body: good, boundary: "XyZ")
        XCTAssertEqual(form.parts.count, 1)
        XCTAssertEqual(form.parts[0].name, "image")
        XCTAssertEqual(Array(good[form.parts[0].content]), Array("a\r\nb".utf8))
        XCTAssertEqual(try RequestImage.bytes(body: good, contentType: type), Array("a\r\nb".utf8))
    }

    func testLimitsAndBrokenHeadersAreRefused() {
        let many = Array((String(repeating: "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\nv\r\n", count: 65) + "--XyZ--\r\n").utf8)
        XCTAssertEqual(status(many), 400, "more than 64 parts")
        let longHeader = Array(("--XyZ\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\nv\r\n--XyZ--\r\n").utf8)
        XCTAssertEqual(status(longHeader), 400, "headers over 8 KiB")
        XCTAssertEqual(status(form([("no colon here", "v")])), 400)
        XCTAssertEqual(status(form([("Bad Name: v", "v")])), 400, "a space is not a token byte")
        XCTAssertEqual(status(Array("--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n".utf8)), 400, "headers never end")
        XCTAssertEqual(status(Array("--XyZ".utf8)), 400, "nothing after the delimiter")
    }

    func testParsingIsLinearInTheBody() throws {
        // Bodies that made naive searches cost boundary length x size: one pass each.
        let boundary = String(repeating: "-", count: 190)
        XCTAssertEqual(status(Array(repeating: UInt8(ascii: "-"), count: 2_000_000), type: "multipart/form-data; boundary=" + boundary), 400)
        var body = Array("--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n".utf8)
        body += [UInt8](repeating: 13, count: 1_000_000) + Array("\r\n--XyZ--\r\n".utf8)
        XCTAssertEqual(try RequestImage.bytes(body: body, contentType: type).count, 1_000_000)
    }

    func testFindIsASubstringSearch() {
        let hay = Array("aaab--b--bX".utf8)
        XCTAssertEqual(RequestImage.find(Array("--b".utf8), in: hay), 4)
        XCTAssertEqual(RequestImage.find(Array("--b".utf8), in: hay, from: 5), 7)
        XCTAssertEqual(RequestImage.find(Array("aab".utf8), in: hay), 1)
        XCTAssertNil(RequestImage.find(Array("bXY".utf8), in: hay))
        XCTAssertNil(RequestImage.find([], in: hay))
    }
}
