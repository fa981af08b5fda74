//go:build !amd64 || purego

package kernels

// Without assembly the slice converters use the scalar functions only.
const (
	convF16SIMD  = false
	convBF16SIMD = false
)

func f32ToF16Vec(dst *uint16, src *float32, n int)  { panic("unreachable") }
func f16ToF32Vec(dst *float32, src *uint16, n int)  { panic("unreachable") }
func f32ToBF16Vec(dst *uint16, src *float32, n int) { panic("unreachable") }
func bf16ToF32Vec(dst *float32, src *uint16, n int) { panic("unreachable") }
