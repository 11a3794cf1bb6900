@testable import HydraServer
import XCTest

final class RequestReaderTests: XCTestCase {
    private func reader(maxHeader: Int = 16 << 10, maxBody: Int = 1 << 20) -> RequestReader {
        RequestReader(maxHeaderBytes: maxHeader, maxBodyBytes: maxBody)
    }

    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testPipelinedRequestsComeOneAtATimeWithTheRest() throws {
        let r = reader()
        let two = bytes("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nPOST /v1/predict?fast=true HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        guard case let .request(first, rest) = r.feed(two) else { return XCTFail("first request not parsed") }
        XCTAssertEqual(first.method, "GET")
        XCTAssertEqual(first.path, "/healthz")
        guard case let .request(second, tail) = r.feed(rest) else { return XCTFail("pipelined request not parsed") }
        XCTAssertEqual(second.method, "POST")
        XCTAssertEqual(second.body, bytes("abc"))
        XCTAssertEqual(try second.queryParameters().first?.0, "fast")
        XCTAssertTrue(tail.isEmpty)
    }

    func testARequestSplitAtEveryByteParsesTheSame() {
        let text = bytes("POST /v1/predict HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Request-Id: abc-1\r\n\r\n3\r\nxyz\r\n0\r\n\r\n")
        for cut in 1..<text.count {
            let r = reader()
            guard case .incomplete = r.feed(Array(text[..<cut])) else { return XCTFail("complete too early at \(cut)") }
            guard case let .request(req, rest) = r.feed(Array(text[cut...])) else { return XCTFail("not parsed when cut at \(cut)") }
            XCTAssertEqual(req.body, bytes("xyz"))
            XCTAssertEqual(req.header("x-request-id"), "abc-1")
            XCTAssertEqual(r.requestID, "abc-1")
            XCTAssertTrue(rest.isEmpty)
        }
    }

    func testLimitsAndProtocolErrorsGiveTheirStatus() {
        func status(_ text: String, maxHeader: Int = 16 << 10, maxBody: Int = 1 << 20) -> Int? {
            if case let .failed(p) = reader(maxHeader: maxHeader, maxBody: maxBody).feed(bytes(text)) { return p.status }
            return nil
        }
        XCTAssertEqual(status("GET /\(String(repeating: "a", count: 200)) HTTP/1.1\r\nHost: a\r\n\r\n", maxHeader: 100), 431)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", maxBody: 5), 413)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffff\r\n", maxBody: 100), 413)
        XCTAssertEqual(status("GET / HTTP/1.1\r\n\r\n"), 400, "HTTP/1.1 without Host")
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400)
        XCTAssertEqual(status("BREW / HTTP/1.1\r\nHost: a\r\n\r\n"), 405)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n"), 417)
        let headers = (0..<201).map { "X-\($0): v\r\n" }.joined()
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\n\(headers)\r\n"), 431)
    }

    func testAdmissionRefusesBeforeTheBodyAndContinueIsSentOnlyWhenAdmitted() {
        let r = reader()
        var continues = 0
        r.sendContinue = { continues += 1 }
        r.admit = { head, length, _ in length.map { $0 > 4 } == true ? Problem(413, "too big for \(head.path)") : nil }
        guard case let .failed(p) = r.feed(bytes("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n")) else {
            return XCTFail("not refused")
        }
        XCTAssertEqual(p.status, 413)
        XCTAssertEqual(continues, 0)
        let ok = reader()
        ok.sendContinue = { continues += 1 }
        guard case .incomplete = ok.feed(bytes("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")) else {
            return XCTFail("admitted head not waiting for its body")
        }
        XCTAssertEqual(continues, 1)
    }
}
