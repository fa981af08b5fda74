package model

import (
	"fmt"

	"github.com/rqtools/rq/kernels"
)

// Interaction turns a network's feature rows (the bottom MLP's output, then
// each table's pooled embedding, back to back) into the top MLP's input.
// dot, dot-self and cat have no weights; an interaction with weights of its
// own (DCN-v2's cross network) exposes them as Layers, ordinary FC-like
// layers that plans, ranges, search, debug and monitor see by name, and
// that Network.Map replaces through WithLayers.
type Interaction interface {
	// String is the interaction's name: "dot", "dot-self", "cat", ...
	String() string
	// Width is the width of its output for a bottom MLP output of width d
	// and tables of the given widths.
	Width(d int, tableDims []int) int
	// CheckTables reports tables whose width the interaction cannot take
	// with a d-wide bottom output, naming the table.
	CheckTables(d int, tables []*Table) error
	// Layers are the interaction's own FC-like layers, in the order it
	// runs them (nil when it has none).
	Layers() []*Linear
	// WithLayers returns a copy of the interaction using ls, one for each
	// of Layers in the same order, instead of its own.
	WithLayers(ls []*Linear) Interaction
	// Forward computes the rows of out (the top MLP's input) from the same
	// rows of feat. Every row depends on its own feature row alone, so the
	// Runner may hand it a chunk of rows at a time.
	Forward(env InteractEnv, feat, out Mat)
}

// InteractEnv is what an interaction's Forward works with.
type InteractEnv struct {
	// Par spreads rows over the Runner's threads (or runs them on the
	// calling goroutine, within a chunk).
	Par Parallel
	// FC runs one of the interaction's own layers on in into out, with
	// the layer's kernel and the Runner's observers.
	FC func(l *Linear, in, out Mat)
	// NumFeatures is the number of vectors in a feature row (the bottom
	// output and one per table) and EmbDim their common width, for
	// interactions that take them as vectors.
	NumFeatures, EmbDim int
}

// InteractionOp is a weightless interaction of the bottom MLP's output and
// the pooled embeddings.
type InteractionOp int

const (
	// Dot: pairwise dot products of T = [bottom, emb_0, ..., emb_{T-1}],
	// the strict lower triangle of T·Tᵀ, concatenated after the bottom output.
	Dot InteractionOp = iota
	// DotSelf: as Dot with the diagonal (dlrm's --arch-interaction-itself).
	DotSelf
	// Cat: the bottom output and every pooled embedding concatenated.
	Cat
	// DotTriu is Dot in TorchRec's order: the strict upper triangle of
	// T·Tᵀ taken row-major (torch.triu_indices(F, F, 1): the pairs i < j
	// in the order (0,1), (0,2), ..., (1,2), ...), concatenated after the
	// bottom output. The products are Dot's; only their order differs.
	DotTriu
)

func (op InteractionOp) String() string {
	switch op {
	case Dot:
		return "dot"
	case DotSelf:
		return "dot-self"
	case Cat:
		return "cat"
	case DotTriu:
		return "dot-triu"
	}
	return fmt.Sprintf("InteractionOp(%d)", int(op))
}

// Width is the top MLP's input width (see Interaction).
func (op InteractionOp) Width(d int, tableDims []int) int {
	f := len(tableDims) + 1
	switch op {
	case Dot, DotTriu:
		return d + f*(f-1)/2
	case DotSelf:
		return d + f*(f+1)/2
	}
	w := d
	for _, td := range tableDims {
		w += td
	}
	return w
}

// CheckTables: dot products need every table as wide as the bottom output;
// cat takes any widths.
func (op InteractionOp) CheckTables(d int, tables []*Table) error {
	if op == Cat {
		return nil
	}
	for _, t := range tables {
		if t.Dim != d {
			return fmt.Errorf("%s: embedding width %d differs from the bottom MLP's output width %d (a dot interaction needs them equal)", t.Name, t.Dim, d)
		}
	}
	return nil
}

// Layers: a weightless interaction has none.
func (op InteractionOp) Layers() []*Linear { return nil }

// WithLayers returns op itself: it has no layers to replace.
func (op InteractionOp) WithLayers([]*Linear) Interaction { return op }

// Forward computes dot products (kernels.InteractDot) or copies the
// feature rows (cat: they are the top input).
func (op InteractionOp) Forward(env InteractEnv, feat, out Mat) {
	if op == Cat {
		for i := 0; i < feat.Rows; i++ {
			copy(out.Data[i*out.Stride:i*out.Stride+feat.Cols], feat.Data[i*feat.Stride:i*feat.Stride+feat.Cols])
		}
		return
	}
	var perm []int32
	if op == DotTriu {
		perm = triuFromTril(env.NumFeatures)
	}
	env.Par(feat.Rows, 1, func(lo, hi int) {
		kernels.InteractDot(feat.Data, feat.Stride, env.NumFeatures, env.EmbDim, op == DotSelf, out.Data, out.Stride, lo, hi)
		if perm == nil {
			return
		}
		// TorchRec's order is a permutation of the kernel's: reorder each
		// row's products through a copy (a few hundred floats, in cache)
		// rather than keep a second set of assembly kernels.
		d := env.EmbDim
		tmp := make([]float32, len(perm))
		for i := lo; i < hi; i++ {
			pairs := out.Data[i*out.Stride+d : i*out.Stride+d+len(perm)]
			copy(tmp, pairs)
			for u, p := range perm {
				pairs[u] = tmp[p]
			}
		}
	})
}

// triuFromTril maps each position u of the strict upper triangle of an f×f
// matrix, row-major (pairs i < j), to the position of the same pair in the
// strict lower triangle, row-major (pairs a > b, kernels.InteractDot's
// order): pair (i, j) is the kernel's (a, b) = (j, i), at j(j-1)/2 + i.
func triuFromTril(f int) []int32 {
	perm := make([]int32, 0, f*(f-1)/2)
	for i := 0; i < f; i++ {
		for j := i + 1; j < f; j++ {
			perm = append(perm, int32(j*(j-1)/2+i))
		}
	}
	return perm
}

// InteractionWidth is op's Width: the top MLP's input width for a d-wide
// bottom output and tables of the given widths.
func InteractionWidth(op InteractionOp, d int, tableDims []int) int { return op.Width(d, tableDims) }
