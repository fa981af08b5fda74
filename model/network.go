package model

import (
	"fmt"
	"sync"

	"github.com/rqtools/rq/kernels"
)

// Activation is the elementwise function after a fully connected layer.
type Activation int

const (
	ActNone Activation = iota
	ActReLU
	ActSigmoid
)

func (a Activation) String() string {
	switch a {
	case ActReLU:
		return "relu"
	case ActSigmoid:
		return "sigmoid"
	}
	return "none"
}

// InteractionOp is how the bottom MLP's output and the pooled embeddings meet.
type InteractionOp int

const (
	// Dot: pairwise dot products of T = [bottom, emb_0, ..., emb_{T-1}],
	// the strict lower triangle of T·Tᵀ, concatenated after the bottom output.
	Dot InteractionOp = iota
	// DotSelf: as Dot with the diagonal (dlrm's --arch-interaction-itself).
	DotSelf
	// Cat: the bottom output and every pooled embedding concatenated.
	Cat
)

func (op InteractionOp) String() string {
	switch op {
	case Dot:
		return "dot"
	case DotSelf:
		return "dot-self"
	case Cat:
		return "cat"
	}
	return fmt.Sprintf("InteractionOp(%d)", int(op))
}

// Linear is a fully connected layer y = act(x·Wᵀ + b) with W in PyTorch's
// [Out x In] layout.
type Linear struct {
	Name    string
	In, Out int
	Act     Activation
	Weight  []float32 // Out*In, row-major [Out][In]
	Bias    []float32 // Out

	packOnce sync.Once
	packed   *kernels.PackedF32
}

// Packed returns the weight packed for the GEMM micro-kernel, packing it on
// first use.
func (l *Linear) Packed() *kernels.PackedF32 {
	l.packOnce.Do(func() { l.packed = kernels.PackF32(l.Weight, l.Out, l.In) })
	return l.packed
}

// Params is the number of parameters (weights and biases).
func (l *Linear) Params() int64 { return int64(l.Out)*int64(l.In) + int64(len(l.Bias)) }

// Table is an embedding table pooled by sum over bags.
type Table struct {
	Name   string
	Rows   int64
	Dim    int
	Weight []float32 // Rows*Dim, row-major; may alias a memory-mapped file
}

// Params is the number of parameters.
func (t *Table) Params() int64 { return t.Rows * int64(t.Dim) }

// Network is a DLRM: Bottom MLP over the dense features, one pooled embedding
// per Table, the Interaction, and the Top MLP whose last layer ends in a sigmoid.
type Network struct {
	NumDense    int
	Bottom      []*Linear
	Tables      []*Table
	Interaction InteractionOp
	Top         []*Linear
}

// EmbDim is the width every interacted vector shares (the bottom MLP's output).
func (n *Network) EmbDim() int { return n.Bottom[len(n.Bottom)-1].Out }

// NumFeatures is the number of vectors entering the interaction: the bottom
// output and one per table.
func (n *Network) NumFeatures() int { return len(n.Tables) + 1 }

// InteractionWidth is the width of the top MLP's input for an interaction op,
// given the bottom output width d, the table widths, and the number of vectors f.
func InteractionWidth(op InteractionOp, d int, tableDims []int) int {
	f := len(tableDims) + 1
	switch op {
	case Dot:
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

// TableRows lists every table's row count, in order (what readers check indices against).
func (n *Network) TableRows() []int64 {
	r := make([]int64, len(n.Tables))
	for i, t := range n.Tables {
		r[i] = t.Rows
	}
	return r
}

// Validate checks that the layers fit together, naming the layer that does not.
func (n *Network) Validate() error {
	if len(n.Bottom) == 0 || len(n.Top) == 0 {
		return fmt.Errorf("network needs a bottom and a top MLP (has %d and %d layers)", len(n.Bottom), len(n.Top))
	}
	check := func(ls []*Linear, in int, what string) (int, error) {
		for _, l := range ls {
			if l.In != in {
				return 0, fmt.Errorf("%s: takes %d inputs but the %s feeds it %d", l.Name, l.In, what, in)
			}
			if len(l.Weight) != l.In*l.Out || len(l.Bias) != l.Out {
				return 0, fmt.Errorf("%s: weight has %d values and bias %d, want %dx%d and %d", l.Name, len(l.Weight), len(l.Bias), l.Out, l.In, l.Out)
			}
			in, what = l.Out, "layer "+l.Name
		}
		return in, nil
	}
	d, err := check(n.Bottom, n.NumDense, "dense input")
	if err != nil {
		return err
	}
	dims := make([]int, len(n.Tables))
	for i, t := range n.Tables {
		if int64(len(t.Weight)) != t.Rows*int64(t.Dim) {
			return fmt.Errorf("%s: weight has %d values, want %dx%d", t.Name, len(t.Weight), t.Rows, t.Dim)
		}
		if n.Interaction != Cat && t.Dim != d {
			return fmt.Errorf("%s: embedding width %d differs from the bottom MLP's output width %d (a dot interaction needs them equal)", t.Name, t.Dim, d)
		}
		dims[i] = t.Dim
	}
	w := InteractionWidth(n.Interaction, d, dims)
	if _, err := check(n.Top, w, "interaction ("+n.Interaction.String()+")"); err != nil {
		return err
	}
	if last := n.Top[len(n.Top)-1]; last.Out != 1 {
		return fmt.Errorf("%s: the last top layer has %d outputs, want 1 (a click probability)", last.Name, last.Out)
	}
	return nil
}

// Params is the total parameter count.
func (n *Network) Params() int64 {
	var p int64
	for _, l := range n.Bottom {
		p += l.Params()
	}
	for _, l := range n.Top {
		p += l.Params()
	}
	for _, t := range n.Tables {
		p += t.Params()
	}
	return p
}
