package kernels

// EmbeddingBagF32 pools bags of rows of an fp32 table by sum:
//
//	for i := lo; i < hi; i++ {
//		o := out[i*ldo : i*ldo+dim]
//		o[:] = 0
//		for p := offsets[i]; p < offsets[i+1]; p++ {
//			w := 1 (or weights[p] when weights != nil)
//			o[:] += w * table[indices[p]*dim : indices[p]*dim+dim]
//		}
//	}
//
// table is rows*dim values. It returns the position p in indices of the first
// index outside [0, rows), or -1 when all were in range; bags after a bad
// index are left unwritten. offsets must be non-decreasing and within
// indices (the caller checks; see CheckBags).
func EmbeddingBagF32(table []float32, rows int64, dim int, indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int {
	for i := lo; i < hi; i++ {
		o := out[i*ldo : i*ldo+dim]
		clear(o)
		for p := offsets[i]; p < offsets[i+1]; p++ {
			ix := indices[p]
			if ix < 0 || ix >= rows {
				return int(p)
			}
			row := table[ix*int64(dim) : ix*int64(dim)+int64(dim)]
			if weights != nil {
				w := weights[p]
				for j, v := range row {
					o[j] += w * v
				}
			} else {
				for j, v := range row {
					o[j] += v
				}
			}
		}
	}
	return -1
}

// CheckBags reports whether offsets describe n bags over nIdx indices in the
// EmbeddingBag convention: n+1 entries, starting at 0, non-decreasing, ending
// at nIdx.
func CheckBags(offsets []int32, n, nIdx int) bool {
	if len(offsets) != n+1 || offsets[0] != 0 || int(offsets[n]) != nIdx {
		return false
	}
	for i := 0; i < n; i++ {
		if offsets[i+1] < offsets[i] {
			return false
		}
	}
	return true
}
