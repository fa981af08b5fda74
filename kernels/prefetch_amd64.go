//go:build !purego

package kernels

// prefetchRows issues PREFETCHT2 for the rows idx[0..n) of a table at tbl
// with rb bytes a row: lines cache lines from the row's start, and the
// line of its last byte (a row straddles one more line than its length
// suggests). Prefetches never fault, so any index is harmless.
//
//go:noescape
func prefetchRows(tbl *byte, rb int, idx *int64, n int, lines int)

// prefetchBagRows prefetches the rows indices name (see PrefetchBags).
func prefetchBagRows(table []byte, rb int, indices []int64) {
	prefetchRows(&table[0], rb, &indices[0], len(indices), (rb+63)/64)
}
