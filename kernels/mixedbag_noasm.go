//go:build !amd64 || purego

package kernels

// Without assembly the mixed table's rows are accumulated in Go only.
var mixedSIMD = false

var mixedConsts [64]uint32

func mixedLUT4(o *float32, codes *byte, n int, lut *[16]float32, c *[64]uint32) {
	panic("kernels: mixedLUT4 without assembly")
}

func mixedLUT2(o *float32, codes *byte, n int, lut *[16]float32, c *[64]uint32) {
	panic("kernels: mixedLUT2 without assembly")
}

func mixedQ8(o *float32, codes *byte, n int, s float64, b float64, w float32) {
	panic("kernels: mixedQ8 without assembly")
}

func mixedFP4(o *float32, codes *byte, n int, t *[16]float32, scales *byte, slut *[256]float32, w float32, c *[64]uint32) {
	panic("kernels: mixedFP4 without assembly")
}

// poolSIMD: no assembly, so never.
func (t *MixedBagTable) poolSIMD(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) bool {
	return false
}
