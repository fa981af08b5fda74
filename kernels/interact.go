package kernels

import "fmt"

// InteractDot computes the DLRM dot interaction for rows [lo, hi). Row i of t
// holds f vectors of width d back to back (t[i*ldt : i*ldt+f*d]); the output
// row is the first vector (the bottom MLP's output) followed by the dot
// products of every pair, row-major over the lower triangle of T·Tᵀ:
//
//	out[i] = T[0] ++ [ dot(T[a], T[b]) for a in 0..f-1 for b in 0..a-1 ]   (b <= a when self)
//
// so it has d + f(f-1)/2 values, or d + f(f+1)/2 with self (InteractWidth).
// It writes only out[i*ldo : i*ldo+width] for i in [lo, hi) and reads only
// t[i*ldt : i*ldt+f*d].
//
// Each row is computed on its own, in an order fixed by (f, d, self) and the
// implementation, so results do not depend on how [0, n) is split into
// [lo, hi) ranges (across goroutines, say). Each dot is summed in float32, in
// an order that depends on the kernel: in order along d (the pure-Go and the
// AVX-512 outer-product kernels, the latter with FMA), or as 16 (AVX-512) or
// 8 (AVX2) FMA partial sums along d added by a fixed tree (the block
// kernels). Any order of a d-term float32 sum is within d·u·Σ_k|T[a][k]·T[b][k]|
// (u = 2⁻²⁴, to first order) of the exact dot; the tests check that bound
// plus the reference's own rounding against the float64 reference. NaN and
// Inf propagate as in the plain loop: a NaN or Inf in T[a] reaches only the
// dots with T[a], and whether a dot is NaN, ±Inf or finite does not depend
// on the summation order (short of finite sums that overflow float32).
//
// InteractDot panics if the dimensions or slice lengths are inconsistent
// (the assembly kernels must never see an out-of-range pointer): callers
// derive them from validated model shapes, so that is a programmer error.
func InteractDot(t []float32, ldt, f, d int, self bool, out []float32, ldo int, lo, hi int) {
	checkInteract(len(t), ldt, f, d, self, len(out), ldo, lo, hi)
	if lo == hi {
		return
	}
	interactDots.fn()(t, ldt, f, d, self, out, ldo, lo, hi)
}

// maxInteractF bounds f so that widths cannot overflow (f² fits easily);
// real models have f <= a few hundred.
const maxInteractF = 1 << 24

// InteractWidth is the output row width of InteractDot: d + f(f-1)/2, or
// d + f(f+1)/2 with self.
func InteractWidth(f, d int, self bool) int {
	return d + numPairs(f, self)
}

func numPairs(f int, self bool) int {
	if self {
		return f * (f + 1) / 2
	}
	return f * (f - 1) / 2
}

// checkInteract panics unless InteractDot's arguments are consistent.
func checkInteract(lt, ldt, f, d int, self bool, lout, ldo, lo, hi int) {
	switch {
	case f < 1 || f > maxInteractF || d < 0:
		panic(fmt.Sprintf("kernels.InteractDot: bad dims f=%d d=%d", f, d))
	case lo < 0 || hi < lo:
		panic(fmt.Sprintf("kernels.InteractDot: bad row range [%d, %d)", lo, hi))
	case lo == hi:
		return
	}
	// f*d cannot overflow once d <= lt / f; t must hold at least one row.
	if d > lt/f {
		panic(fmt.Sprintf("kernels.InteractDot: t has %d floats, less than one row of f*d = %d*%d", lt, f, d))
	}
	row := f * d
	width := InteractWidth(f, d, self)
	switch {
	case ldt < row:
		panic(fmt.Sprintf("kernels.InteractDot: ldt=%d < f*d=%d", ldt, row))
	case ldo < width:
		panic(fmt.Sprintf("kernels.InteractDot: ldo=%d < width=%d", ldo, width))
	case !fits(lt, hi, ldt, row):
		panic(fmt.Sprintf("kernels.InteractDot: t has %d floats, rows [%d, %d) with ldt=%d need %d*%d+%d", lt, lo, hi, ldt, hi-1, ldt, row))
	case !fits(lout, hi, ldo, width):
		panic(fmt.Sprintf("kernels.InteractDot: out has %d floats, rows [%d, %d) with ldo=%d need %d*%d+%d", lout, lo, hi, ldo, hi-1, ldo, width))
	}
}

// fits reports whether (hi-1)*ld + w <= n without overflowing (hi >= 1,
// 0 <= w <= ld).
func fits(n, hi, ld, w int) bool {
	if w > n {
		return false
	}
	return ld == 0 || hi-1 <= (n-w)/ld
}

// interactDotGeneric is the reference interaction, the definition every
// implementation is tested against: the plain loop of the doc comment, with
// each dot accumulated in float64 and rounded once, so its own error is at
// most half an ulp and test tolerances measure the fast implementations'
// error alone.
func interactDotGeneric(t []float32, ldt, f, d int, self bool, out []float32, ldo int, lo, hi int) {
	for i := lo; i < hi; i++ {
		ti := t[i*ldt : i*ldt+f*d]
		o := out[i*ldo:]
		copy(o[:d], ti[:d])
		k := d
		for a := 0; a < f; a++ {
			va := ti[a*d : a*d+d]
			end := a
			if self {
				end = a + 1
			}
			for b := 0; b < end; b++ {
				vb := ti[b*d : b*d+d]
				var s float64
				for j, x := range va {
					s += float64(x) * float64(vb[j])
				}
				o[k] = float32(s)
				k++
			}
		}
	}
}

// interactFn is the signature of InteractDot's implementations: they
// receive arguments already validated by checkInteract, with lo < hi.
type interactFn func(t []float32, ldt, f, d int, self bool, out []float32, ldo int, lo, hi int)

// interactDots is InteractDot's family: interactArchImpls (interact_amd64.go
// or interact_noasm.go), then interactGo.
var interactDots = newFamily(interactArchImpls, interactGo)

// InteractImpl names the InteractDot implementation in use ("avx512",
// "avx2" or "go"), for diagnostics next to Features and SgemmImpl.
func InteractImpl() string { return interactDots.name() }

// interactGo is the portable implementation: for each a, four dots at a
// time share the loads of T[a] and keep four independent float32 chains
// (each summed in order along d, like the plain loop). It is the non-x86
// path, so it is kept simple rather than tuned.
func interactGo(t []float32, ldt, f, d int, self bool, out []float32, ldo int, lo, hi int) {
	np := numPairs(f, self)
	for i := lo; i < hi; i++ {
		ti := t[i*ldt : i*ldt+f*d]
		o := out[i*ldo : i*ldo+d+np]
		copy(o[:d], ti[:d])
		k := d
		for a := 0; a < f; a++ {
			va := ti[a*d : a*d+d]
			end := a
			if self {
				end = a + 1
			}
			b := 0
			for ; b+4 <= end; b += 4 {
				// Same-length reslices let the compiler drop the bounds checks.
				v0 := ti[b*d : b*d+d]
				v1 := ti[(b+1)*d : (b+1)*d+d]
				v2 := ti[(b+2)*d : (b+2)*d+d]
				v3 := ti[(b+3)*d : (b+3)*d+d]
				v0, v1, v2, v3 = v0[:len(va)], v1[:len(va)], v2[:len(va)], v3[:len(va)]
				var s0, s1, s2, s3 float32
				for j, x := range va {
					s0 += x * v0[j]
					s1 += x * v1[j]
					s2 += x * v2[j]
					s3 += x * v3[j]
				}
				o[k], o[k+1], o[k+2], o[k+3] = s0, s1, s2, s3
				k += 4
			}
			for ; b < end; b++ {
				vb := ti[b*d : b*d+d]
				vb = vb[:len(va)]
				var s float32
				for j, x := range va {
					s += x * vb[j]
				}
				o[k] = s
				k++
			}
		}
	}
}
