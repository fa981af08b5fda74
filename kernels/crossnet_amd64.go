//go:build !purego

package kernels

// The SIMD loops of CrossUpdate (crossnet_amd64.s): n elements from the
// pointers, multiply then add (VMULPS, VADDPS: two roundings, as the
// reference). The AVX-512 loop masks its tail; the AVX2 one stops at a
// multiple of 8 and leaves the rest to the caller.

//go:noescape
func crossUpdate512(dst, x0, y, xl *float32, n int)

//go:noescape
func crossUpdate256(dst, x0, y, xl *float32, n int)

var crossArchImpls = []impl[crossFn]{
	{name: "avx512", available: hasAVX512, fn: func(dst, x0, y, xl []float32) {
		crossUpdate512(&dst[0], &x0[0], &y[0], &xl[0], len(dst))
	}},
	{name: "avx2", available: hasAVX2FMA, fn: func(dst, x0, y, xl []float32) {
		n := len(dst) &^ 7
		if n > 0 {
			crossUpdate256(&dst[0], &x0[0], &y[0], &xl[0], n)
		}
		crossUpdateGeneric(dst[n:], x0[n:], y[n:], xl[n:])
	}},
}
