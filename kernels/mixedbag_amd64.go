//go:build !purego

package kernels

// The AVX-512 accumulators of a mixed table's rows (mixedbag_amd64.s): the
// sub-byte and MX fp4 rows through a 16-value table of their decoded (and
// weighted) values, 8-bit rows by the double-precision decode. Each does
// the scalar code's own float operations, so results are bit for bit the
// pure-Go ones; the tests run both.

//go:noescape
func mixedLUT4(o *float32, codes *byte, n int, lut *[16]float32, c *[64]uint32)

//go:noescape
func mixedLUT2(o *float32, codes *byte, n int, lut *[16]float32, c *[64]uint32)

//go:noescape
func mixedQ8(o *float32, codes *byte, n int, s float64, b float64, w float32)

// mixedSIMD selects the accumulators above (tests turn it off to check the
// Go code on this machine too).
var mixedSIMD = hasAVX512

// mixedConsts: [0, 16) the dword of the 8 code bytes each nibble is in,
// [16, 32) its shift there, [32, 48) the shift of each 2-bit code in a
// dword, then the masks 15 and 3.
var mixedConsts = func() (c [64]uint32) {
	for k := range 16 {
		c[k] = uint32(k / 8)
		c[16+k] = uint32(4 * (k % 8))
		c[32+k] = uint32(2 * k)
	}
	c[48], c[49] = 15, 3
	return c
}()

//go:noescape
func mixedFP4(o *float32, codes *byte, n int, t *[16]float32, scales *byte, slut *[256]float32, w float32, c *[64]uint32)
