package model

import (
	"fmt"
	"sync"

	"github.com/rqtools/rq/kernels"
)

// CrossNet is DCN-v2's low-rank cross network (TorchRec's LowRankCrossNet,
// the interaction of DLRM_DCN and of MLPerf's dlrm-v2) over the flattened
// feature row x0 = [bottom output, emb_0, ..., emb_{T-1}] of width N:
//
//	x_{l+1} = x0 ⊙ (W_l (V_l x_l) + b_l) + x_l
//
// with V_l [r x N] and W_l [N x r]. Each V_l is an FC-like layer without a
// bias and each W_l one with bias b_l, neither with an activation: plans,
// presets, search and debug treat them as any other FC layer, by name. Its
// output, x_L, is N wide.
type CrossNet struct {
	V, W []*Linear // one of each per cross layer, in order

	scratch sync.Pool // *[]float32: a call's V_l x_l and W_l(·)+b_l rows
}

// NewCrossNet returns the cross network of layers V[l], W[l].
func NewCrossNet(v, w []*Linear) *CrossNet {
	if len(v) != len(w) {
		panic(fmt.Sprintf("model.NewCrossNet: %d V kernels but %d W kernels", len(v), len(w)))
	}
	return &CrossNet{V: v, W: w}
}

// String is "dcn" (rq.interaction and inspect name it so).
func (c *CrossNet) String() string { return "dcn" }

// Width is N: the bottom output and every table, flattened.
func (c *CrossNet) Width(d int, tableDims []int) int {
	w := d
	for _, td := range tableDims {
		w += td
	}
	return w
}

// CheckTables: the cross network takes the feature row as one vector, but
// TorchRec stacks the features as [F+1, d] before flattening, so every
// table must be as wide as the bottom output. It also checks that the
// cross layers' shapes fit that N-wide vector, naming the layer.
func (c *CrossNet) CheckTables(d int, tables []*Table) error {
	n := d
	for _, t := range tables {
		if t.Dim != d {
			return fmt.Errorf("%s: embedding width %d differs from the bottom MLP's output width %d (the DCN cross network stacks them as equal-width vectors)", t.Name, t.Dim, d)
		}
		n += t.Dim
	}
	if len(c.V) != len(c.W) || len(c.V) == 0 {
		return fmt.Errorf("dcn cross network has %d V and %d W kernels, want the same number, at least one", len(c.V), len(c.W))
	}
	for l := range c.V {
		v, w := c.V[l], c.W[l]
		switch {
		case v.In != n:
			return fmt.Errorf("%s: takes %d inputs but the feature row (bottom output and %d tables) is %d wide", v.Name, v.In, len(tables), n)
		case w.In != v.Out:
			return fmt.Errorf("%s: takes %d inputs but %s gives %d (its rank)", w.Name, w.In, v.Name, v.Out)
		case w.Out != n:
			return fmt.Errorf("%s: gives %d outputs, want the feature row's width %d", w.Name, w.Out, n)
		case len(v.Bias) != 0:
			return fmt.Errorf("%s: has a bias (%d values); a cross layer's V kernel has none", v.Name, len(v.Bias))
		case len(w.Bias) != n:
			return fmt.Errorf("%s: bias has %d values, want %d", w.Name, len(w.Bias), n)
		case v.Act != ActNone || w.Act != ActNone:
			return fmt.Errorf("%s, %s: cross layers have no activation (have %s, %s)", v.Name, w.Name, v.Act, w.Act)
		}
	}
	return nil
}

// Layers are V_0, W_0, V_1, W_1, ...: the order Forward runs them.
func (c *CrossNet) Layers() []*Linear {
	ls := make([]*Linear, 0, 2*len(c.V))
	for l := range c.V {
		ls = append(ls, c.V[l], c.W[l])
	}
	return ls
}

// WithLayers returns a cross network on ls (V_0, W_0, V_1, W_1, ... as
// Layers lists them).
func (c *CrossNet) WithLayers(ls []*Linear) Interaction {
	if len(ls) != 2*len(c.V) {
		panic(fmt.Sprintf("model.CrossNet.WithLayers: %d layers for %d cross layers (want V and W of each)", len(ls), len(c.V)))
	}
	v, w := make([]*Linear, len(c.V)), make([]*Linear, len(c.V))
	for l := range c.V {
		v[l], w[l] = ls[2*l], ls[2*l+1]
	}
	return NewCrossNet(v, w)
}

// Forward computes the cross layers for the rows of feat (x0) into out
// (x_l, updated in place). The two products of a layer run through env.FC
// (the layers' own kernels, observed); the elementwise update is
// kernels.CrossUpdate. Layer 0 reads x_0 from feat itself and writes x_1
// into out, so out is never a copy of feat. Every row depends on its own
// feature row alone, so the Runner may stream chunks of rows through it.
func (c *CrossNet) Forward(env InteractEnv, feat, out Mat) {
	rows, n := feat.Rows, out.Cols
	if rows == 0 {
		return
	}
	if len(c.V) == 0 { // no cross layers: x_0 itself
		for i := range rows {
			copy(out.Data[i*out.Stride:i*out.Stride+n], feat.Data[i*feat.Stride:i*feat.Stride+n])
		}
		return
	}
	rank := 0
	for _, v := range c.V {
		rank = max(rank, v.Out)
	}
	need := rows * (rank + n)
	bp, _ := c.scratch.Get().(*[]float32)
	if bp == nil || cap(*bp) < need {
		b := make([]float32, need)
		bp = &b
	}
	buf := (*bp)[:need]
	defer c.scratch.Put(bp)
	xl := Mat{Rows: rows, Cols: n, Stride: feat.Stride, Data: feat.Data}
	for l := range c.V {
		r := c.V[l].Out
		low := Mat{Rows: rows, Cols: r, Stride: r, Data: buf[:rows*r]}
		y := Mat{Rows: rows, Cols: n, Stride: n, Data: buf[rows*rank : rows*rank+rows*n]}
		env.FC(c.V[l], xl, low)
		env.FC(c.W[l], low, y)
		in := xl
		env.Par(rows, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				// x_{l+1} = x0 * y + x_l, the product rounded before
				// the add as PyTorch's separate mul and add round it.
				kernels.CrossUpdate(out.Data[i*out.Stride:i*out.Stride+n], feat.Data[i*feat.Stride:i*feat.Stride+n],
					y.Data[i*n:i*n+n], in.Data[i*in.Stride:i*in.Stride+n])
			}
		})
		xl = out
	}
}
