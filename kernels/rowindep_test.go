package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The row-independence contract (see GemmRowAlign): every GEMM computes
// output row i from input row i alone, by the same sequence of floating-point
// operations whatever M is, wherever the row sits in the call, and however
// the caller splits the rows. rq's results then do not depend on --batch,
// on the streaming chunks or on the thread count. These tests compare every
// row of M-row calls (M = 1..rowIndepMaxM, at shifting offsets, and one
// large M) bit for bit with the same row computed by a 1-row call, for every
// implementation the CPU has.

const (
	rowIndepMaxM = 200
	rowIndepBigM = 2048
)

// rowIndepMs lists the (m, first row) calls to compare: every m up to
// rowIndepMaxM, its first row shifting so rows meet every position within
// the kernels' row blocks, and the large m from row 0.
func rowIndepMs() [][2]int {
	var ms [][2]int
	for m := 1; m <= rowIndepMaxM; m++ {
		ms = append(ms, [2]int{m, (m * 7) % 13})
	}
	return append(ms, [2]int{rowIndepBigM, 0})
}

// rowIndepRows is how many rows of A the calls of rowIndepMs read.
func rowIndepRows() int {
	rows := 0
	for _, c := range rowIndepMs() {
		rows = max(rows, c[0]+c[1])
	}
	return rows
}

// rowIndepShapes are (N, K): partial panels and K tails, the dot-product
// path (N <= 4), layers small enough for the fp16 widened copy and larger,
// and a leading dimension (K = 1024) that takes the aliasing copy of A.
var rowIndepShapes = [][2]int{{40, 67}, {1, 13}, {3, 100}, {96, 256}, {33, 1024}, {64, 479}}

// bitsEqual compares float32 rows bit for bit (NaN payloads included).
func firstBitDiff(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// checkRowsIndependent runs gemm(m, first, c) (rows [first, first+m) of a
// fixed A into c, m x n) for every call of rowIndepMs and compares each row
// with gemm(1, that row).
func checkRowsIndependent(t *testing.T, what string, n int, gemm func(m, first int, c []float32)) {
	t.Helper()
	rows := rowIndepRows()
	single := make([]float32, rows*n)
	for i := 0; i < rows; i++ {
		gemm(1, i, single[i*n:(i+1)*n])
	}
	c := make([]float32, rowIndepBigM*n)
	for _, mc := range rowIndepMs() {
		m, first := mc[0], mc[1]
		got := c[:m*n]
		gemm(m, first, got)
		for i := 0; i < m; i++ {
			if j := firstBitDiff(got[i*n:(i+1)*n], single[(first+i)*n:(first+i+1)*n]); j >= 0 {
				t.Fatalf("%s: row %d of a %d-row call (A row %d), column %d: %v (%#08x), the same row alone: %v (%#08x)",
					what, i, m, first+i, j, got[i*n+j], math.Float32bits(got[i*n+j]),
					single[(first+i)*n+j], math.Float32bits(single[(first+i)*n+j]))
			}
		}
	}
}

// rowIndepOperands returns weights, A (rows x k, values spread over a few
// orders of magnitude so that a reordered sum shows in the last bits) and
// a bias.
func rowIndepOperands(rng *rand.Rand, n, k, rows int) (w, a, bias []float32) {
	w = make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
	}
	a = make([]float32, rows*k)
	for i := range a {
		a[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
	}
	bias = make([]float32, n)
	for i := range bias {
		bias[i] = float32(rng.NormFloat64())
	}
	return w, a, bias
}

func TestGemmRowsIndependentOfM(t *testing.T) {
	forEachImplOf(t, sgemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(12, 8))
		for si, s := range rowIndepShapes {
			n, k := s[0], s[1]
			w, a, bias := rowIndepOperands(rng, n, k, rowIndepRows())
			p := PackF32(w, n, k)
			relu := si%2 == 0
			checkRowsIndependent(t, fmt.Sprintf("N=%d K=%d", n, k), n, func(m, first int, c []float32) {
				p.Gemm(m, a[first*k:], k, c, n, bias, relu)
			})
		}
	})
}

func TestF16GemmRowsIndependentOfM(t *testing.T) {
	forEachF16Impl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(12, 16))
		for si, s := range rowIndepShapes {
			n, k := s[0], s[1]
			w, a, bias := rowIndepOperands(rng, n, k, rowIndepRows())
			p := PackF16FromF32(w, n, k)
			relu := si%2 == 1
			checkRowsIndependent(t, fmt.Sprintf("N=%d K=%d", n, k), n, func(m, first int, c []float32) {
				p.Gemm(m, a[first*k:], k, c, n, bias, relu)
			})
		}
	})
}

func TestBF16GemmRowsIndependentOfM(t *testing.T) {
	forEachImplOf(t, bf16Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(12, 17))
		for si, s := range rowIndepShapes {
			n, k := s[0], s[1]
			w, a, bias := rowIndepOperands(rng, n, k, rowIndepRows())
			ah := make([]uint16, len(a))
			F32ToBF16Slice(ah, a)
			p := PackBF16FromF32(w, n, k)
			relu := si%2 == 0
			checkRowsIndependent(t, fmt.Sprintf("N=%d K=%d fp32 A", n, k), n, func(m, first int, c []float32) {
				p.Gemm(m, a[first*k:], k, c, n, bias, relu)
			})
			checkRowsIndependent(t, fmt.Sprintf("N=%d K=%d bf16 A", n, k), n, func(m, first int, c []float32) {
				p.GemmBF16A(m, ah[first*k:], k, c, n, bias, relu)
			})
		}
	})
}

// TestI8GemmRowsIndependentOfM covers the int8 GEMM's float epilogues
// (per-row dynamic and static activations, float and requantized u8
// output) and its M-dependent choices (padding A's K tail from 24 rows).
func TestI8GemmRowsIndependentOfM(t *testing.T) {
	forEachImplOf(t, i8Gemms, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(12, 18))
		rows := rowIndepRows()
		for si, s := range rowIndepShapes {
			n, k := s[0], s[1]
			wf, af, bias := rowIndepOperands(rng, n, k, rows)
			qw, ws := QuantizeWeightsI8(wf, n, k, true)
			p := PackI8(qw, n, k, ws)
			a := make([]uint8, rows*k)
			scale, zero := make([]float32, rows), make([]int32, rows)
			QuantizeRowsDynamicU8To(af, rows, k, k, a, k, false, scale, zero)
			relu := si%2 == 0
			checkRowsIndependent(t, fmt.Sprintf("N=%d K=%d per-row", n, k), n, func(m, first int, c []float32) {
				aq := ActQuant{RowScale: scale[first : first+m], RowZero: zero[first : first+m]}
				p.Gemm(m, a[first*k:], k, aq, c, n, bias, relu)
			})
			static := ActQuant{Scale: 0.03, Zero: 117}
			checkRowsIndependent(t, fmt.Sprintf("N=%d K=%d static", n, k), n, func(m, first int, c []float32) {
				p.Gemm(m, a[first*k:], k, static, c, n, bias, relu)
			})
			checkRowsIndependent(t, fmt.Sprintf("N=%d K=%d u8 out", n, k), n, func(m, first int, c []float32) {
				u := make([]uint8, m*n)
				p.GemmU8(m, a[first*k:], k, static, u, n, bias, relu, 0.05, 9)
				for i, v := range u {
					c[i] = float32(v)
				}
			})
		}
	})
}

// TestQuantizeRowsIndependentOfM: per-row dynamic quantization gives each
// row the same bytes and parameters whatever rows come with it.
func TestQuantizeRowsIndependentOfM(t *testing.T) {
	for _, useAsm := range []bool{false, i8QuantAsm} {
		saved := i8QuantAsm
		i8QuantAsm = useAsm
		rng := rand.New(rand.NewPCG(12, 19))
		const k = 67
		_, x, _ := rowIndepOperands(rng, 1, k, rowIndepRows())
		for _, rr := range []bool{false, true} {
			// Row i as float32: k quantized bytes, then scale and zero.
			checkRowsIndependent(t, fmt.Sprintf("asm=%v reduce=%v", useAsm, rr), k+2, func(m, first int, c []float32) {
				q := make([]uint8, m*k)
				scale, zero := make([]float32, m), make([]int32, m)
				QuantizeRowsDynamicU8To(x[first*k:], m, k, k, q, k, rr, scale, zero)
				for i := 0; i < m; i++ {
					for j := 0; j < k; j++ {
						c[i*(k+2)+j] = float32(q[i*k+j])
					}
					c[i*(k+2)+k] = scale[i]
					c[i*(k+2)+k+1] = float32(zero[i])
				}
			})
		}
		i8QuantAsm = saved
	}
}

// TestInteractRowsIndependentOfM: the interaction computes each row alone.
func TestInteractRowsIndependentOfM(t *testing.T) {
	forEachImplOf(t, interactDots, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(12, 20))
		for _, fd := range [][2]int{{27, 16}, {9, 40}, {27, 64}} {
			f, d := fd[0], fd[1]
			width := InteractWidth(f, d, false)
			_, x, _ := rowIndepOperands(rng, 1, f*d, rowIndepRows())
			checkRowsIndependent(t, fmt.Sprintf("f=%d d=%d", f, d), width, func(m, first int, c []float32) {
				InteractDot(x[first*f*d:], f*d, f, d, false, c, width, 0, m)
			})
		}
	})
}
