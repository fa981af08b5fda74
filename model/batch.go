package model

// Batch is a block of examples in the layout the forward pass consumes.
//
// Dense is row-major [N x NumDense], already transformed (log(x+1) or not: the
// reader decides). Sparse features are given per table as embedding bags in
// the PyTorch EmbeddingBag convention: Indices[t] holds every index of table t
// for the batch, and the bag of example i is Indices[t][Offsets[t][i]:Offsets[t][i+1]],
// so Offsets[t] has N+1 entries, starts at 0 and ends at len(Indices[t]).
// Weights, when not nil, holds one per-sample weight per index (PyTorch's
// per_sample_weights); nil means every weight is 1.
type Batch struct {
	N        int
	NumDense int
	Dense    []float32
	Indices  [][]int64
	Offsets  [][]int32
	Weights  [][]float32
	Labels   []float32
	// Row is the index, in the source file's row numbering (0-based, before
	// any --rows selection), of the batch's first example; it lets errors
	// name the offending row.
	Row int64
}
