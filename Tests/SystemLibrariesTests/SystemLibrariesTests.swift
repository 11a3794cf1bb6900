import CHTTPParser
import CLibUV
import CTurboJPEG
import CXNNPACK
import XCTest

/// The system-library module maps resolve and link against Debian 12's packages.
final class SystemLibrariesTests: XCTestCase {
    func testLibrariesLinkAndReportVersions() {
        XCTAssertGreaterThanOrEqual(uv_version() >> 16, 1, "libuv 1.x")
        let v = http_parser_version()
        XCTAssertGreaterThanOrEqual((v >> 16) & 255, 2, "http-parser 2.x")
        XCTAssertEqual(xnn_initialize(nil), xnn_status_success)
        let pool = pthreadpool_create(2)
        XCTAssertEqual(pthreadpool_get_threads_count(pool), 2)
        pthreadpool_destroy(pool)
        let tj = tjInitDecompress()
        XCTAssertNotNil(tj)
        tjDestroy(tj)
    }
}
