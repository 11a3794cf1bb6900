import Foundation

/// Segmentation metrics from a confusion matrix accumulated over a data set (void pixels, 255,
/// are ignored), as the paper reports them: mean IoU, pixel accuracy and per-class IoU.
public struct SegmentationMetrics: Sendable {
    public let classes: Int
    /// confusion[truth * classes + predicted]
    public private(set) var confusion: [Int]

    public init(classes: Int) {
        self.classes = classes
        confusion = [Int](repeating: 0, count: classes * classes)
    }

    public mutating func add(predicted: [UInt8], truth: [UInt8]) {
        precondition(predicted.count == truth.count)
        for i in truth.indices {
            let t = Int(truth[i]), p = Int(predicted[i])
            guard t < classes, p < classes else { continue }
            confusion[t * classes + p] += 1
        }
    }

    /// IoU per class; nil for a class absent from both truth and prediction.
    public var iou: [Double?] {
        (0..<classes).map { c in
            let tp = confusion[c * classes + c]
            let truth = (0..<classes).reduce(0) { $0 + confusion[c * classes + $1] }
            let predicted = (0..<classes).reduce(0) { $0 + confusion[$1 * classes + c] }
            let union = truth + predicted - tp
            return union == 0 ? nil : Double(tp) / Double(union)
        }
    }

    public var meanIoU: Double {
        let present = iou.compactMap { $0 }
        return present.isEmpty ? 0 : present.reduce(0, +) / Double(present.count)
    }

    public var pixelAccuracy: Double {
        let total = confusion.reduce(0, +)
        return total == 0 ? 0 : Double((0..<classes).reduce(0) { $0 + confusion[$1 * classes + $1] }) / Double(total)
    }
}

/// Depth metrics over pixels with ground truth (> 0, up to `maxDepth`), computed per image and
/// averaged over images (Eigen et al.'s convention): RMSE (m), log-RMSE, abs-rel, delta < 1.25.
public struct DepthMetrics: Sendable {
    public let maxDepth: Float
    public private(set) var images = 0
    private var rmse = 0.0, logRMSE = 0.0, absRel = 0.0, delta1 = 0.0

    public init(maxDepth: Float) { self.maxDepth = maxDepth }

    public mutating func add(predicted: [Float], truth: [Float]) {
        precondition(predicted.count == truth.count)
        var n = 0, se = 0.0, sle = 0.0, ar = 0.0, d1 = 0
        for i in truth.indices {
            let t = truth[i]
            guard t > 0, t <= maxDepth, t.isFinite else { continue }
            let p = Double(min(max(predicted[i], 1e-3), maxDepth))
            let g = Double(t)
            se += (p - g) * (p - g)
            let l = log(p) - log(g)
            sle += l * l
            ar += abs(p - g) / g
            if max(p / g, g / p) < 1.25 { d1 += 1 }
            n += 1
        }
        guard n > 0 else { return }
        images += 1
        rmse += (se / Double(n)).squareRoot()
        logRMSE += (sle / Double(n)).squareRoot()
        absRel += ar / Double(n)
        delta1 += Double(d1) / Double(n)
    }

    public var summary: (rmse: Double, logRMSE: Double, absRel: Double, delta1: Double)? {
        guard images > 0 else { return nil }
        let k = Double(images)
        return (rmse / k, logRMSE / k, absRel / k, delta1 / k)
    }
}
