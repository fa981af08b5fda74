package kernels

import "fmt"

// crossFn is the signature of CrossUpdate's implementations: n elements.
type crossFn func(dst, x0, y, xl []float32)

// crossUpdates is CrossUpdate's family: the SIMD loops where built
// (crossnet_amd64.go), then crossUpdateGeneric.
var crossUpdates = newFamily(crossArchImpls, crossUpdateGeneric)

// CrossUpdate is the elementwise step of a DCN-v2 cross layer,
// x_{l+1} = x0 * y + x_l with y = W (V x_l) + b: it sets
// dst[j] = x0[j]*y[j] + xl[j] for j < len(dst). dst may be xl (the update
// in place) but must not otherwise overlap the inputs. It panics if an
// input is shorter than dst.
func CrossUpdate(dst, x0, y, xl []float32) {
	n := len(dst)
	if len(x0) < n || len(y) < n || len(xl) < n {
		panic(fmt.Sprintf("kernels: CrossUpdate of %d elements with inputs of %d, %d and %d", n, len(x0), len(y), len(xl)))
	}
	if n == 0 {
		return
	}
	crossUpdates.fn()(dst, x0[:n], y[:n], xl[:n])
}

// CrossImpl names the CrossUpdate implementation in use.
func CrossImpl() string { return crossUpdates.name() }

// crossUpdateGeneric is the reference:
//
//	for j := range dst {
//		dst[j] = float32(x0[j]*y[j]) + xl[j]
//	}
//
// The product is rounded on its own before the add, as PyTorch's separate
// mul and add round it: no fused multiply-add, on any architecture (the
// explicit conversion forbids Go's compiler to fuse them).
func crossUpdateGeneric(dst, x0, y, xl []float32) {
	for j := range dst {
		dst[j] = float32(x0[j]*y[j]) + xl[j]
	}
}
