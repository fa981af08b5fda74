//go:build !purego

package search

// puregoBuild: this test binary was built without -tags purego, so kernel
// families run their SIMD implementations where the CPU has them.
const puregoBuild = false
