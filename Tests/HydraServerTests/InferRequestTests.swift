import Foundation
import XCTest
@testable import HydraServer

final class InferRequestTests: XCTestCase {
    private func json(_ object: Any) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }

    func testBinaryTensorsFollowTheHeaderInInputOrder() throws {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]
        let header = json(["id": "r1", "parameters": ["binary_data_output": true, "fx": 700, "fast": true, "timeout": 2500],
                           "inputs": [["name": "image", "datatype": "BYTES", "shape": [1], "parameters": ["binary_data_size": png.count + 4]]],
                           "outputs": [["name": "depth", "parameters": ["binary_data": false]], ["name": "pointcloud"]]])
        let r = try InferRequest(body: header + [UInt8(png.count), 0, 0, 0] + png, headerLength: header.count, maxPixels: 1 << 20)
        guard case let .image(bytes) = r.input else { return XCTFail("not an image") }
        XCTAssertEqual(bytes, png)
        XCTAssertEqual(r.id, "r1")
        XCTAssertEqual(r.outputNames, ["depth", "pointcloud"])
        XCTAssertFalse(r.binary("depth"))
        XCTAssertTrue(r.binary("pointcloud"))
        XCTAssertEqual(r.fileKinds, [.pointcloud])
        let query = Dictionary(uniqueKeysWithValues: r.query)
        XCTAssertEqual(query, ["fx": "700", "fast": "true", "timeout_ms": "3"])  // microseconds, rounded up to ms
    }

    func testPixelsFromNestedJSONData() throws {
        let rows = (0..<32).map { y in (0..<33).map { x in [x % 256, y, 7] } }
        let r = try InferRequest(body: json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [1, 32, 33, 3], "data": rows]]]),
                                 headerLength: nil, maxPixels: 1 << 20)
        guard case let .pixels(image) = r.input else { return XCTFail("not pixels") }
        XCTAssertEqual([image.width, image.height], [33, 32])
        XCTAssertEqual(Array(image.pixels[(33 * 3)..<(33 * 3 + 6)]), [0, 1, 7, 1, 1, 7])
        XCTAssertEqual(r.outputNames, ["segmentation", "depth"])
    }

    func testEveryMistakeIsA4xxNamingIt() {
        let image: [String: Any] = ["name": "image", "datatype": "BYTES", "shape": [1], "data": ["x"]]
        let cases: [([UInt8], Int?, Int, String)] = [
            (Array("[1]".utf8), nil, 400, "JSON object"),
            (json(["inputs": [image, image]]), nil, 400, "one tensor"),
            (json(["inputs": [image], "parameters": ["bogus": 1]]), nil, 400, "unknown parameter 'bogus'"),
            (json(["inputs": [image], "parameters": ["outputs": "depth"]]), nil, 400, "outputs list"),
            (json(["inputs": [image], "parameters": ["binary_data_output": 1]]), nil, 400, "true or false"),
            (json(["inputs": [image], "outputs": [["name": "depth"], ["name": "depth"]]]), nil, 400, "twice"),
            (json(["inputs": [image], "outputs": [["name": "colour"]]]), nil, 400, "unknown output"),
            (json(["inputs": [["name": "image", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]]]]), nil, 400, "batches"),
            (json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [4000, 4000, 3], "data": []]]]), nil, 413, "limit"),
            (json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [32, 32, 3], "data": [1, 2]]]]), nil, 400, "needs 3072"),
            (json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [32, 32, 3], "data": [300]]]]), nil, 400, "0-255"),
            (json(["inputs": [["name": "tensor", "datatype": "FP32", "shape": [1]]]]), nil, 400, "unknown input"),
            (json(["inputs": [image]]) + [1, 2], nil, 400, "JSON object"),
            (json(["inputs": [image]]) + [1, 2], Int?(json(["inputs": [image]]).count), 400, "after the inputs"),
            (json(["inputs": [image]]), 10_000, 400, "does not fit"),
        ]
        for (body, length, status, says) in cases {
            XCTAssertThrowsError(try InferRequest(body: body, headerLength: length, maxPixels: 1 << 20), says) { error in
                guard let p = error as? Problem else { return XCTFail("\(error)") }
                XCTAssertEqual(p.status, status, p.detail)
                XCTAssertTrue(p.detail.contains(says), "\(says): \(p.detail)")
            }
        }
    }
}
