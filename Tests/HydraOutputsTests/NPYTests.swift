import XCTest
@testable import HydraOutputs

final class NPYTests: XCTestCase {
    func testHeaderIsNumPyFormat1AndAligned() {
        let bytes = NPY.encode([1, 2, 3, 4, 5, 6], shape: [1, 2, 3])
        XCTAssertEqual(Array(bytes.prefix(8)), [0x93] + Array("NUMPY".utf8) + [1, 0])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }"))
        XCTAssertTrue(header.hasSuffix("\n"))
        XCTAssertEqual(bytes.count, 10 + headerLength + 24)
    }

    func testRoundTrip() throws {
        let values: [Float] = [0, -1.5, .pi, 1e-30, 3e38, 42]
        for shape in [[6], [2, 3], [1, 3, 2]] {
            let (s, v) = try NPY.decode(NPY.encode(values, shape: shape))
            XCTAssertEqual(s, shape)
            XCTAssertEqual(v, values)
        }
        XCTAssertThrowsError(try NPY.decode([1, 2, 3]))
        XCTAssertThrowsError(try NPY.decode(Array(NPY.encode(values, shape: [6]).dropLast())))
    }
}
