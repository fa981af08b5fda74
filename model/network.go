package model

import (
	"fmt"
	"sync"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
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

// Linear is a fully connected layer y = act(x·Wᵀ + b) with W in PyTorch's
// [Out x In] layout.
type Linear struct {
	Name    string
	In, Out int
	Act     Activation
	// Weight is the fp32 weight, Out*In row-major [Out][In]. A layer loaded
	// from a quantized file has none (nil) and runs on Kernel.
	Weight []float32
	Bias   []float32 // Out, always fp32
	// Kernel, when set, computes the layer at a lower precision; nil means
	// fp32 on the packed Weight.
	Kernel FCKernel

	packOnce sync.Once
	packed   *kernels.PackedF32
}

// Parallel runs fn over [0, n) split into chunks whose boundaries are
// multiples of align, possibly concurrently.
type Parallel func(n, align int, fn func(lo, hi int))

// FCKernel computes a fully connected layer at some precision: out =
// act(in·Wᵀ + bias) for all in.Rows rows, spreading the work with par. It
// sees the whole batch, so per-batch (dynamic) activation quantization
// can take its statistics before splitting the rows, unless it implements
// RowWise: then the Runner may hand it a chunk of rows at a time.
type FCKernel interface {
	// Precision is the weights' precision, as plans and quantized files
	// name it (int8 for both int8 kernels).
	Precision() precision.Precision
	// Label names the kernel's arithmetic in reports and errors:
	// precision.FCLabel of its precision and activation mode
	// ("int8-dynamic"), with "-sim" for a simulation of one.
	Label() string
	// Bytes is the size of the kernel's parameters as stored (weights,
	// scales, zero points); the bias, fp32, is the Linear's, and a layer
	// may have none (DCN's V kernels).
	Bytes() int64
	Forward(par Parallel, in, out Mat, bias []float32, act Activation)
}

// BagKernel pools embedding bags from a table stored at some precision,
// with the semantics of kernels.EmbeddingBagF32 (sum over each bag,
// optional per-sample weights; returns the position of the first index out
// of range, or -1).
type BagKernel interface {
	// Precision is the rows' precision (int4 for 4-bit row-wise rows).
	Precision() precision.Precision
	Bytes() int64
	Pool(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int
}

// Precision is the layer's weight precision (fp32 when it has no Kernel).
func (l *Linear) Precision() precision.Precision {
	if l.Kernel != nil {
		return l.Kernel.Precision()
	}
	return precision.FP32
}

// Label names the layer's arithmetic in reports ("int8-static", "fp32").
func (l *Linear) Label() string {
	if l.Kernel != nil {
		return l.Kernel.Label()
	}
	return precision.FP32.String()
}

// Bytes is the size of the layer's parameters as stored.
func (l *Linear) Bytes() int64 {
	if l.Kernel != nil {
		return l.Kernel.Bytes() + 4*int64(len(l.Bias))
	}
	return 4 * l.Params()
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
	Name string
	Rows int64
	Dim  int
	// Weight is the fp32 table, Rows*Dim row-major; it may alias a
	// memory-mapped file. A table loaded from a quantized file has none
	// and runs on Kernel.
	Weight []float32
	Kernel BagKernel // nil: fp32 on Weight
	// Release, when set, drops the table's resident memory-mapped pages;
	// the Runner calls it after each batch it pools from the table. A
	// mapped page that has been read counts in the process's resident set
	// until it is unmapped, so random lookups into tables larger than
	// memory would otherwise end with them all resident; released pages
	// are read back from the page cache when next needed. modelio sets it
	// on the tables of a loaded model that exceed its resident budget.
	Release func()
}

// Precision is the table's storage precision (fp32 when it has no Kernel).
func (t *Table) Precision() precision.Precision {
	if t.Kernel != nil {
		return t.Kernel.Precision()
	}
	return precision.FP32
}

// Label names the table's storage in reports: its precision's table
// label ("int4-rowwise", "fp32"), or the kernel's own when it has one (a
// mixed table's "mixed(int8 5% / int2)").
func (t *Table) Label() string {
	if k, ok := t.Kernel.(interface{ TableLabel() string }); ok {
		return k.TableLabel()
	}
	return t.Precision().TableLabel()
}

// Bytes is the size of the table as stored.
func (t *Table) Bytes() int64 {
	if t.Kernel != nil {
		return t.Kernel.Bytes()
	}
	return 4 * t.Params()
}

// Pool pools bags of rows [lo, hi) into out (see BagKernel).
func (t *Table) Pool(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int {
	if t.Kernel != nil {
		return t.Kernel.Pool(indices, offsets, weights, out, ldo, lo, hi)
	}
	return kernels.EmbeddingBagF32(t.Weight, t.Rows, t.Dim, indices, offsets, weights, out, ldo, lo, hi)
}

// Prefetch asks for the rows bags [lo, hi) pool to be brought toward the
// core, for tables whose storage offers it (fp32 and every BagTable); it
// changes nothing else (see kernels.PrefetchBags).
func (t *Table) Prefetch(indices []int64, offsets []int32, lo, hi int) {
	switch k := t.Kernel.(type) {
	case nil:
		kernels.PrefetchBags(kernels.TableF32, kernels.F32Bytes(t.Weight), t.Dim, indices, offsets, lo, hi)
	case interface {
		Prefetch([]int64, []int32, int, int)
	}:
		k.Prefetch(indices, offsets, lo, hi)
	}
}

// Params is the number of parameters.
func (t *Table) Params() int64 { return t.Rows * int64(t.Dim) }

// Network is a DLRM: Bottom MLP over the dense features, one pooled embedding
// per Table, the Interaction, and the Top MLP whose last layer ends in a sigmoid.
type Network struct {
	NumDense    int
	Bottom      []*Linear
	Tables      []*Table
	Interaction Interaction
	Top         []*Linear
}

// EmbDim is the width every interacted vector shares (the bottom MLP's output).
func (n *Network) EmbDim() int { return n.Bottom[len(n.Bottom)-1].Out }

// NumFeatures is the number of vectors entering the interaction: the bottom
// output and one per table.
func (n *Network) NumFeatures() int { return len(n.Tables) + 1 }

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
			if (l.Kernel == nil && len(l.Weight) != l.In*l.Out) || len(l.Bias) != l.Out {
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
	if n.Interaction == nil {
		return fmt.Errorf("network has no interaction")
	}
	dims := make([]int, len(n.Tables))
	for i, t := range n.Tables {
		if t.Kernel == nil && int64(len(t.Weight)) != t.Rows*int64(t.Dim) {
			return fmt.Errorf("%s: weight has %d values, want %dx%d", t.Name, len(t.Weight), t.Rows, t.Dim)
		}
		dims[i] = t.Dim
	}
	if err := n.Interaction.CheckTables(d, n.Tables); err != nil {
		return err
	}
	for _, l := range n.Interaction.Layers() {
		if (l.Kernel == nil && len(l.Weight) != l.In*l.Out) || len(l.Bias) != l.Out && len(l.Bias) != 0 {
			return fmt.Errorf("%s: weight has %d values and bias %d, want %dx%d and %d", l.Name, len(l.Weight), len(l.Bias), l.Out, l.In, l.Out)
		}
	}
	w := n.Interaction.Width(d, dims)
	if _, err := check(n.Top, w, "interaction ("+n.Interaction.String()+")"); err != nil {
		return err
	}
	if last := n.Top[len(n.Top)-1]; last.Out != 1 {
		return fmt.Errorf("%s: the last top layer has %d outputs, want 1 (a click probability)", last.Name, last.Out)
	}
	return nil
}

// Bytes is the size of all parameters as stored.
func (n *Network) Bytes() int64 {
	var b int64
	for l := range n.Layers() {
		b += l.Bytes()
	}
	return b
}

// LayerNames lists every layer in network order: bottom MLP, tables, top
// MLP (the names plans and reports use).
func (n *Network) LayerNames() []string {
	var names []string
	for l := range n.Layers() {
		names = append(names, l.Name())
	}
	return names
}

// Prepare packs every layer's weights for its kernel now rather than on
// first use, so timings of the forward pass do not include packing. It is
// safe to call more than once and concurrently.
func (n *Network) Prepare() {
	for l := range n.Linears() {
		if p, ok := l.Kernel.(interface{ Prepare() }); ok {
			p.Prepare()
		} else if l.Kernel == nil {
			l.Packed()
		}
	}
}

// featWidth is the width of a feature row: the bottom MLP's output, then
// each table's pooled embedding.
func (n *Network) featWidth() int {
	w := n.Bottom[len(n.Bottom)-1].Out
	for _, t := range n.Tables {
		w += t.Dim
	}
	return w
}

// Params is the total parameter count.
func (n *Network) Params() int64 {
	var p int64
	for l := range n.Layers() {
		p += l.Params()
	}
	return p
}
