package kernels

// InteractDot computes the DLRM dot interaction for rows [lo, hi). Row i of t
// holds f vectors of width d back to back (t[i*ldt : i*ldt+f*d]); the output
// row is the first vector (the bottom MLP's output) followed by the dot
// products of every pair, row-major over the lower triangle of T·Tᵀ:
//
//	out[i] = T[0] ++ [ dot(T[a], T[b]) for a in 0..f-1 for b in 0..a-1 ]   (b <= a when self)
//
// so it has d + f(f-1)/2 values, or d + f(f+1)/2 with self.
func InteractDot(t []float32, ldt, f, d int, self bool, out []float32, ldo int, lo, hi int) {
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
