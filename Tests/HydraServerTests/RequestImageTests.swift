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

    /// MultipartKit 4.7.1 traps on such a name; found by the http fuzz target (Fuzz/regressions/http).
    func testANonASCIIPartHeaderNameIsA400NotACrash() {
        var body = Array("--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\nX-".utf8)
        body += [0xC3, 0xA9]
        body += Array(": v\r\n\r\nabc\r\n--XyZ--\r\n".utf8)
        XCTAssertEqual(status(body), 400)
        // The same byte in a header value is fine (UTF-8 filenames).
        XCTAssertFalse(RequestImage.partHeaderNamesAreASCII(body, delimiter: Array("--XyZ".utf8)))
        XCTAssertTrue(RequestImage.partHeaderNamesAreASCII(form([("Content-Disposition: form-data; name=\"image\"; filename=\"\u{e9}\"", "x")]),
                                                           delimiter: Array("--XyZ".utf8)))
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
