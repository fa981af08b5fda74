//go:build !purego

package kernels

// mxPrefetchLines are the prefetch settings TestEmbeddingBagMXImpls runs
// the kernels with: the default distance (beyond its short index lists),
// none, and 2 indices ahead, so that the prefetch reads the index list up
// to its end.
var mxPrefetchLines = []int{bagPrefetchLines, 0, 2}

// setPrefetchLines sets bagPrefetchLines and returns its old value.
func setPrefetchLines(l int) int {
	old := bagPrefetchLines
	bagPrefetchLines = l
	return old
}
