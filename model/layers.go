package model

import (
	"iter"

	"github.com/rqtools/rq/precision"
)

// The network seen as a set of layers. Workflows (calibrate, quantize,
// search, debug, monitor, the model file writer and reader) walk and
// replace layers through these functions, never through Bottom and Top by
// name, so that an architecture with other layers (an interaction with
// weights of its own, such as DCN's cross network) needs no change there.

// Part is where a layer sits in the network.
type Part int

const (
	PartBottom      Part = iota // the bottom (dense) MLP
	PartTable                   // an embedding table
	PartInteraction             // the interaction's own layers (DCN's cross network)
	PartTop                     // the top (over) MLP
)

func (p Part) String() string {
	return [...]string{"bottom", "table", "interaction", "top"}[p]
}

// Layer is one quantizable layer of a network: an FC-like weight matrix
// (FC) or an embedding table (Table, with its position in Network.Tables).
// Exactly one of FC and Table is set.
type Layer struct {
	FC    *Linear
	Table *Table
	// TableIndex is Table's index in Network.Tables (the sparse feature it
	// pools), or -1 for an FC layer.
	TableIndex int
	// Part is where the layer sits: what feeds it, and for presets that
	// treat parts differently (PyTorch's quantize_dynamic leaves DCN's
	// cross network fp32: its kernels are Parameters, not nn.Linear).
	Part Part
}

// Name is the layer's name, as plans, ranges and reports use it.
func (l Layer) Name() string {
	if l.FC != nil {
		return l.FC.Name
	}
	return l.Table.Name
}

// Precision is the layer's weight or storage precision.
func (l Layer) Precision() precision.Precision {
	if l.FC != nil {
		return l.FC.Precision()
	}
	return l.Table.Precision()
}

// Label names the layer's arithmetic or storage in reports
// ("int8-dynamic", "int4-rowwise").
func (l Layer) Label() string {
	if l.FC != nil {
		return l.FC.Label()
	}
	return l.Table.Label()
}

// Bytes is the size of the layer's parameters as stored.
func (l Layer) Bytes() int64 {
	if l.FC != nil {
		return l.FC.Bytes()
	}
	return l.Table.Bytes()
}

// Params is the layer's parameter count.
func (l Layer) Params() int64 {
	if l.FC != nil {
		return l.FC.Params()
	}
	return l.Table.Params()
}

// interactionLayers is the interaction's own layers (none for dot and cat).
func (n *Network) interactionLayers() []*Linear {
	if n.Interaction == nil {
		return nil
	}
	return n.Interaction.Layers()
}

// Linears yields every FC-like layer in the order the forward pass runs
// them: the bottom MLP, the interaction's own layers, the top MLP.
func (n *Network) Linears() iter.Seq[*Linear] {
	return func(yield func(*Linear) bool) {
		for _, ls := range [][]*Linear{n.Bottom, n.interactionLayers(), n.Top} {
			for _, l := range ls {
				if !yield(l) {
					return
				}
			}
		}
	}
}

// Layers yields every quantizable layer in network order: the bottom MLP,
// the tables, the interaction's own layers, the top MLP (the order of
// LayerNames, plans and reports).
func (n *Network) Layers() iter.Seq[Layer] {
	return func(yield func(Layer) bool) {
		for _, l := range n.Bottom {
			if !yield(Layer{FC: l, TableIndex: -1, Part: PartBottom}) {
				return
			}
		}
		for i, t := range n.Tables {
			if !yield(Layer{Table: t, TableIndex: i, Part: PartTable}) {
				return
			}
		}
		for _, l := range n.interactionLayers() {
			if !yield(Layer{FC: l, TableIndex: -1, Part: PartInteraction}) {
				return
			}
		}
		for _, l := range n.Top {
			if !yield(Layer{FC: l, TableIndex: -1, Part: PartTop}) {
				return
			}
		}
	}
}

// Layer returns the layer named name.
func (n *Network) Layer(name string) (Layer, bool) {
	for l := range n.Layers() {
		if l.Name() == name {
			return l, true
		}
	}
	return Layer{}, false
}

// Map returns a copy of n in which every FC-like layer l is replaced by
// fc(l) and every table t by table(t); a nil function keeps those layers
// as they are. The copy shares every layer it keeps (layers are not copied
// deeply). The first error a function returns stops the copy and is
// returned. It is the one way workflows build a network with some layers
// quantized, simulated or swapped.
func (n *Network) Map(fc func(*Linear) (*Linear, error), table func(*Table) (*Table, error)) (*Network, error) {
	out := *n
	mapFCs := func(ls []*Linear) ([]*Linear, error) {
		r := make([]*Linear, len(ls))
		for i, l := range ls {
			r[i] = l
			if fc == nil {
				continue
			}
			q, err := fc(l)
			if err != nil {
				return nil, err
			}
			r[i] = q
		}
		return r, nil
	}
	var err error
	if out.Bottom, err = mapFCs(n.Bottom); err != nil {
		return nil, err
	}
	if out.Top, err = mapFCs(n.Top); err != nil {
		return nil, err
	}
	if ls := n.interactionLayers(); len(ls) > 0 {
		mapped, err := mapFCs(ls)
		if err != nil {
			return nil, err
		}
		out.Interaction = n.Interaction.WithLayers(mapped)
	}
	out.Tables = make([]*Table, len(n.Tables))
	for i, t := range n.Tables {
		out.Tables[i] = t
		if table == nil {
			continue
		}
		if out.Tables[i], err = table(t); err != nil {
			return nil, err
		}
	}
	return &out, nil
}

// WithLayer returns a copy of n with the layer named like l.FC or l.Table
// replaced by it (the copy shares every other layer), and whether n had
// such a layer.
func (n *Network) WithLayer(l Layer) (*Network, bool) {
	found := false
	out, _ := n.Map(func(x *Linear) (*Linear, error) {
		if l.FC != nil && x.Name == l.FC.Name {
			found = true
			return l.FC, nil
		}
		return x, nil
	}, func(t *Table) (*Table, error) {
		if l.Table != nil && t.Name == l.Table.Name {
			found = true
			return l.Table, nil
		}
		return t, nil
	})
	return out, found
}

// InputWidth is the width of the top MLP's input: what the interaction
// produces.
func (n *Network) InputWidth() int {
	dims := make([]int, len(n.Tables))
	for i, t := range n.Tables {
		dims[i] = t.Dim
	}
	return n.Interaction.Width(n.EmbDim(), dims)
}
