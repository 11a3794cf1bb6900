import CHTTPParser
import CLibUV
import CTurboJPEG
import CXNNPACK
import HydraKernels
import XCTest

/// The system-library module maps resolve and link against Debian 12's packages.
final class SystemLibrariesTests: XCTestCase {
    func testLibrariesLinkAndReportVersions() {
        XCTAssertGreaterThanOrEqual(uv_version() >> 16, 1, "libuv 1.x")
        let v = http_parser_version()
        XCTAssertGreaterThanOrEqual((v >> 16) & 255, 2, "http-parser 2.x")
        // With Hydra's allocator, as the engine initialises it: the first call in a process decides.
        XCTAssertEqual(xnn_initialize(hydra_xnn_allocator()), xnn_status_success)
        let pool = pthreadpool_create(2)
        XCTAssertEqual(pthreadpool_get_threads_count(pool), 2)
        pthreadpool_destroy(pool)
        let tj = tjInitDecompress()
        XCTAssertNotNil(tj)
        tjDestroy(tj)
    }
}
