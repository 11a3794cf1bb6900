import XCTest
@testable import HydraOutputs

final class EvaluationTests: XCTestCase {
    func testIoUAndAccuracyFromAConfusionMatrix() {
        var m = SegmentationMetrics(classes: 3)
        // truth:     0 0 1 1 2 255
        // predicted: 0 1 1 1 0 2
        m.add(predicted: [0, 1, 1, 1, 0, 2], truth: [0, 0, 1, 1, 2, 255])
        // class 0: tp 1, truth 2, predicted 2 -> 1/3; class 1: tp 2, truth 2, predicted 3 -> 2/3; class 2: tp 0 -> 0.
        XCTAssertEqual(m.iou[0]!, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(m.iou[1]!, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(m.iou[2]!, 0, accuracy: 1e-12)
        XCTAssertEqual(m.meanIoU, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(m.pixelAccuracy, 3.0 / 5, accuracy: 1e-12, "void is ignored")
        var absent = SegmentationMetrics(classes: 3)
        absent.add(predicted: [0, 0], truth: [0, 0])
        XCTAssertNil(absent.iou[1], "a class in neither truth nor prediction does not count")
        XCTAssertEqual(absent.meanIoU, 1)
    }

    func testDepthMetricsPerImageAveraged() {
        var d = DepthMetrics(maxDepth: 80)
        // Image 1: truth 10, 20 (0 = none, 100 = beyond range); predicted 11, 20.
        d.add(predicted: [11, 20, 5, 5], truth: [10, 20, 0, 100])
        // Image 2: exact.
        d.add(predicted: [4], truth: [4])
        let s = d.summary!
        XCTAssertEqual(d.images, 2)
        XCTAssertEqual(s.rmse, ((1.0 / 2).squareRoot() + 0) / 2, accuracy: 1e-9)
        XCTAssertEqual(s.absRel, (0.1 / 2) / 2, accuracy: 1e-9)
        XCTAssertEqual(s.logRMSE, ((log(1.1) * log(1.1) / 2).squareRoot()) / 2, accuracy: 1e-9)
        XCTAssertEqual(s.delta1, 1, accuracy: 1e-12)
        XCTAssertNil(DepthMetrics(maxDepth: 10).summary)
    }
}
