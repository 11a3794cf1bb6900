// swift-tools-version:5.9
import PackageDescription

// -O3 in release only (the kernels are plain C with intrinsics: at -O0 they are slower, not wrong).
// -fno-math-errno went: it changed no instruction of any kernel (objdump of each object, with and without).
let cSettings: [CSetting] = [.unsafeFlags(["-O3"], .when(configuration: .release))]

let package = Package(
    name: "Hydra",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "hydra", targets: ["hydra"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
    ],
    targets: [
        // System libraries (Debian 12 -dev packages).
        .systemLibrary(name: "CXNNPACK", path: "Sources/CXNNPACK"),
        .systemLibrary(name: "CLibUV", path: "Sources/CLibUV"),
        .systemLibrary(name: "CHTTPParser", path: "Sources/CHTTPParser"),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG"),
        // libpng plus the C shim that keeps setjmp/longjmp out of Swift frames.
        .target(name: "CPNG", path: "Sources/CPNG", cSettings: cSettings,
                linkerSettings: [.linkedLibrary("png16")]),
        // Own kernels where XNNPACK's 2022 snapshot is weak; runtime CPU dispatch.
        .target(name: "HydraKernels", dependencies: ["CXNNPACK"], cSettings: cSettings),

        .target(name: "HydraImage", dependencies: ["CPNG", "CTurboJPEG"]),
        .target(name: "HydraWeights", dependencies: [
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        .target(name: "HydraEngine", dependencies: ["CXNNPACK", "HydraKernels", "HydraWeights"],
                resources: [.copy("Resources")]),
        .target(name: "HydraOutputs", dependencies: ["HydraEngine", "HydraImage", "HydraKernels", "CXNNPACK"]),
        .target(name: "HydraServer", dependencies: [
            "CLibUV", "CHTTPParser", "HydraImage", "HydraEngine", "HydraKernels", "HydraOutputs", "HydraWeights",
            // For its system zlib module (CZlib): ContentCoding inflates and compresses bodies with it.
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
        ], resources: [.copy("Resources/web")]),
        // Untrusted-input paths as functions of bytes, for libFuzzer and the regression tests.
        .target(name: "HydraFuzz", dependencies: ["HydraEngine", "HydraImage", "HydraServer", "HydraWeights"]),
        .executableTarget(name: "hydra-fuzz", dependencies: ["HydraFuzz"]),
        .executableTarget(name: "hydra", dependencies: [
            "HydraImage", "HydraWeights", "HydraEngine", "HydraKernels", "HydraOutputs", "HydraServer",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "HydraImageTests", dependencies: ["HydraImage"],
                    exclude: ["make_fixtures.py"], resources: [.copy("Fixtures")]),
        .testTarget(name: "HydraWeightsTests", dependencies: ["HydraWeights"]),
        .testTarget(name: "HydraEngineTests", dependencies: ["HydraEngine", "HydraKernels"]),
        .testTarget(name: "HydraOutputsTests", dependencies: ["HydraOutputs", "HydraKernels"],
                    exclude: ["make_fixtures.py"], resources: [.copy("Fixtures")]),
        .testTarget(name: "HydraServerTests", dependencies: ["HydraServer", "HydraEngine"]),
        .testTarget(name: "HydraFuzzTests", dependencies: ["HydraFuzz", "HydraWeights"]),
        .testTarget(name: "SystemLibrariesTests", dependencies: ["CXNNPACK", "CLibUV", "CHTTPParser", "CTurboJPEG", "HydraKernels"]),
    ]
)
