package search

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/quantize"
)

// Layer kinds.
const (
	KindFC    = "fc"
	KindTable = "table"
)

// Layer describes one quantizable layer: enough to price its rungs
// (bytes, predicted time) without building them.
type Layer struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // KindFC or KindTable
	// FC layers: inputs and outputs.
	In  int `json:"in,omitempty"`
	Out int `json:"out,omitempty"`
	// Tables: rows and width.
	Rows int64 `json:"rows,omitempty"`
	Dim  int   `json:"dim,omitempty"`
	// NoBias marks an FC-like layer without a bias (DCN's V kernels).
	NoBias bool `json:"no_bias,omitempty"`
}

// NetworkLayers lists a network's layers in network order (net.Layers:
// bottom MLP, tables, the interaction's own layers, top MLP), as plans
// name them.
func NetworkLayers(net *model.Network) []Layer {
	var ls []Layer
	for l := range net.Layers() {
		if l.Table != nil {
			ls = append(ls, Layer{Name: l.Table.Name, Kind: KindTable, Rows: l.Table.Rows, Dim: l.Table.Dim})
			continue
		}
		ls = append(ls, Layer{Name: l.FC.Name, Kind: KindFC, In: l.FC.In, Out: l.FC.Out, NoBias: len(l.FC.Bias) == 0})
	}
	return ls
}

// Bytes is the layer's stored size at lp, as model.Network.Bytes counts
// it for the network quantize.Apply builds.
func (l Layer) Bytes(lp quantize.LayerPlan) int64 {
	if l.Kind == KindTable {
		f, err := quantize.TableFormat(lp.Precision)
		if err != nil {
			return 0
		}
		return l.Rows * int64(f.RowBytes(l.Dim))
	}
	w := int64(l.In) * int64(l.Out)
	bias := 4 * int64(l.Out)
	if l.NoBias {
		bias = 0
	}
	switch lp.Precision {
	case quantize.FP16, quantize.BF16:
		return 2*w + bias
	case quantize.Int8:
		scales := int64(1)
		if lp.Weights != quantize.PerTensor {
			scales = int64(l.Out)
		}
		b := w + 4*scales + bias
		if lp.Activation == quantize.Static {
			b += 8
		}
		return b
	}
	return 4*w + bias
}

// Rung is one step of a layer's ladder: a name and the LayerPlan it stands for.
type Rung struct {
	Name string             `json:"name"`
	Plan quantize.LayerPlan `json:"plan"`
}

// fcRungs and tableRungs are the rung names --ladder accepts.
var fcRungs = map[string]quantize.LayerPlan{
	"int8-static":  {Precision: quantize.Int8, Activation: quantize.Static, Granularity: quantize.PerTensor, Weights: quantize.PerChannel, Method: "l2", WeightRange: quantize.NarrowRange},
	"int8-dynamic": {Precision: quantize.Int8, Activation: quantize.Dynamic, Granularity: quantize.PerRow, Weights: quantize.PerChannel, WeightRange: quantize.NarrowRange},
	"fp16":         {Precision: quantize.FP16},
	"bf16":         {Precision: quantize.BF16},
	"fp32":         {Precision: quantize.FP32},
}

var tableRungs = map[string]quantize.LayerPlan{
	"int2":        {Precision: quantize.Int2Rowwise},
	"int2-greedy": {Precision: quantize.Int2Rowwise, Greedy: true},
	"int4":        {Precision: quantize.Int4Rowwise},
	"int4-greedy": {Precision: quantize.Int4Rowwise, Greedy: true},
	"int8":        {Precision: quantize.Int8Rowwise},
	"fp16":        {Precision: quantize.FP16},
	"fp32":        {Precision: quantize.FP32},
}

func rungNames(m map[string]quantize.LayerPlan) string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// Ladders are the candidate rungs, lowest (cheapest, riskiest) first. A
// layer's ladder is PerLayer[name] when set, else Table or FC by kind. fp32
// is always the top rung, added when a ladder lacks it.
type Ladders struct {
	FC       []string
	Table    []string
	PerLayer map[string][]string
}

// DefaultLadders are issue 5's: tables 4-bit -> 8-bit -> fp16 -> fp32
// (2-bit first with allowInt2); FC int8 static -> int8 dynamic -> fp16 -> fp32.
func DefaultLadders(allowInt2 bool) Ladders {
	l := Ladders{
		FC:    []string{"int8-static", "int8-dynamic", "fp16", "fp32"},
		Table: []string{"int4", "int8", "fp16", "fp32"},
	}
	if allowInt2 {
		l.Table = append([]string{"int2"}, l.Table...)
	}
	return l
}

// ParseLadders applies a --ladder override to base: semicolon-separated
// KEY=RUNG,RUNG,... where KEY is "fc", "table" or a layer name, e.g.
// "table=int4-greedy,int8,fp32;fc=int8-dynamic,bf16;top_l.4=fp32".
func ParseLadders(spec string, base Ladders) (Ladders, error) {
	out := Ladders{FC: base.FC, Table: base.Table, PerLayer: map[string][]string{}}
	for k, v := range base.PerLayer {
		out.PerLayer[k] = v
	}
	for _, part := range strings.Split(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.TrimSpace(val) == "" {
			return out, fmt.Errorf("ladder %q: want KEY=RUNG,RUNG,... (KEY fc, table or a layer name)", part)
		}
		var rungs []string
		for _, r := range strings.Split(val, ",") {
			if r = strings.TrimSpace(r); r != "" {
				rungs = append(rungs, r)
			}
		}
		switch key {
		case "fc":
			out.FC = rungs
		case "table":
			out.Table = rungs
		default:
			out.PerLayer[key] = rungs
		}
	}
	return out, nil
}

// resolve builds each layer's ladder (rungs lowest first, fp32 last),
// checking every rung name against the layer's kind and every per-layer
// key against the layers.
func (ld Ladders) resolve(layers []Layer) ([][]Rung, error) {
	known := map[string]bool{}
	for _, l := range layers {
		known[l.Name] = true
	}
	var keys []string
	for k := range ld.PerLayer {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			var names []string
			for _, l := range layers {
				names = append(names, l.Name)
			}
			return nil, fmt.Errorf("ladder names layer %q, which the model does not have; its layers are %s", k, strings.Join(names, ", "))
		}
	}
	out := make([][]Rung, len(layers))
	for i, l := range layers {
		names, set := ld.FC, fcRungs
		if l.Kind == KindTable {
			names, set = ld.Table, tableRungs
		}
		if p, ok := ld.PerLayer[l.Name]; ok {
			names = p
		}
		seen := map[string]bool{}
		for _, n := range names {
			lp, ok := set[n]
			if !ok {
				return nil, fmt.Errorf("ladder of %s (%s): unknown rung %q; rungs: %s", l.Name, l.Kind, n, rungNames(set))
			}
			if seen[n] {
				return nil, fmt.Errorf("ladder of %s: rung %q twice", l.Name, n)
			}
			seen[n] = true
			if n == "fp32" {
				continue // always last, added below
			}
			out[i] = append(out[i], Rung{Name: n, Plan: lp})
		}
		out[i] = append(out[i], Rung{Name: "fp32", Plan: quantize.LayerPlan{Precision: quantize.FP32}})
	}
	return out, nil
}

// prune drops rungs an objective makes pointless: a rung that costs no
// less than a rung above it (which is at least as accurate, by the
// ladder's order) can never be the better choice.
func prune(rungs []Rung, cost func(Rung) float64) []Rung {
	var out []Rung
	best := cost(rungs[len(rungs)-1])
	keep := make([]bool, len(rungs))
	keep[len(rungs)-1] = true
	for i := len(rungs) - 2; i >= 0; i-- {
		if c := cost(rungs[i]); c < best {
			keep[i], best = true, c
		}
	}
	for i, r := range rungs {
		if keep[i] {
			out = append(out, r)
		}
	}
	return out
}

// tableFormat is a table rung's storage format (for the cost model).
func tableFormat(lp quantize.LayerPlan) kernels.TableFormat {
	f, _ := quantize.TableFormat(lp.Precision)
	return f
}
