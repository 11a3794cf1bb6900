import HydraEngine
import XCTest
@testable import HydraServer

final class MemoryPlanTests: XCTestCase {
    func testQuantitiesAreReadAsKubernetesWritesThem() {
        XCTAssertEqual(MemoryPlan.parseQuantity("1Gi"), 1 << 30)
        XCTAssertEqual(MemoryPlan.parseQuantity("900Mi"), 900 << 20)
        XCTAssertEqual(MemoryPlan.parseQuantity("1.5Gi"), 3 << 29)
        XCTAssertEqual(MemoryPlan.parseQuantity("2G"), 2_000_000_000)
        XCTAssertEqual(MemoryPlan.parseQuantity("1073741824"), 1 << 30)  // the Downward API's form
        for bad in ["", "Gi", "-1Gi", "0", "1Xi", "nan", "1e30Gi", "12 Mi"] {
            XCTAssertNil(MemoryPlan.parseQuantity(bad), bad)
        }
    }

    func testTheSharesAddUpToTheBudgetAndFollowIt() throws {
        let model = try DefaultModel.untrained()
        var last = 0
        for gib in [1, 2, 4] {
            let plan = try MemoryPlan(maxMemory: gib << 30, models: [("m", model)], workersPerModel: 2,
                                      maxBodyBytes: 32 << 20, maxPixels: 8_000_000, maxNetworkPixels: nil)
            let share = try XCTUnwrap(plan.models["m"])
            XCTAssertLessThanOrEqual(plan.baseBytes + plan.connectionBytes + 2 * plan.perWorkerBytes, (gib << 30) / 10 * 9)
            XCTAssertLessThanOrEqual(share.activationBytes + share.limits.workingBytes, plan.perWorkerBytes)
            XCTAssertLessThanOrEqual(share.limits.maxNetworkPixels, MemoryPlan.defaultNetworkPixelCap)
            XCTAssertGreaterThanOrEqual(plan.connectionBytes, 64 << 20)  // two bodies at least
            XCTAssertGreaterThanOrEqual(share.limits.workingBytes, last)
            last = share.limits.workingBytes
        }
    }

    func testADefaultMaxPixelsIsLoweredToFitButAnExplicitOneIsNot() throws {
        let model = try DefaultModel.untrained()
        func plan(_ lower: Bool) throws -> MemoryPlan {
            try MemoryPlan.fitting(maxMemory: 512 << 20, models: [("m", model)], workersPerModel: 1, maxBodyBytes: 32 << 20,
                                   maxPixels: 20_000_000, maxNetworkPixels: nil, lowerMaxPixels: lower)
        }
        let lowered = try plan(true)
        XCTAssertLessThan(lowered.maxPixels, 20_000_000)
        XCTAssertGreaterThanOrEqual(lowered.maxPixels, 4_000_000)
        // Ordinary camera frames (a KITTI frame, 0.46 MP; VGA 0.31 MP) still reach the network whole.
        // The crp1 chain writes its outputs over its input and addend (Graph.inPlaceOutputs); without that
        // four full 1/4-resolution tensors are alive at once and this fell to 0.86 MP.
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(lowered.models["m"]).limits.maxNetworkPixels, 1_000_000)
        XCTAssertThrowsError(try plan(false)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("--max-memory 512 MiB is too small"), text)
        }
    }

    func testABudgetTooSmallForAnyFrameIsRefusedWithWhatIsMissing() throws {
        let model = try DefaultModel.untrained()
        XCTAssertThrowsError(try MemoryPlan.fitting(maxMemory: 128 << 20, models: [("m", model)], workersPerModel: 1,
                                                    maxBodyBytes: 32 << 20, maxPixels: 20_000_000, maxNetworkPixels: nil,
                                                    lowerMaxPixels: true)) { error in
            XCTAssertTrue("\(error)".contains("raise --max-memory"), "\(error)")
        }
    }
}
