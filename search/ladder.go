package search

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
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
	// AccessRows is how many of a table's rows the calibration's access
	// counts list; 0 when there are none, and then the table gets no
	// mixed rungs (mixed.go).
	AccessRows int64 `json:"access_rows,omitempty"`
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
		if lp.Precision == precision.Mixed {
			return l.mixedBytes(lp)
		}
		if f, ok := kernels.MXFormatOf(lp.Precision); ok {
			// Codes and E8M0 scales, as kernels.MXBagTable.Bytes counts them.
			return l.Rows * int64(kernels.MXCodeBytes(f, l.Dim)+kernels.MXScales(l.Dim))
		}
		f, ok := kernels.TableFormatOf(lp.Precision)
		if !ok {
			return 0
		}
		return l.Rows * int64(f.RowBytes(l.Dim))
	}
	w := int64(l.In) * int64(l.Out)
	bias := 4 * int64(l.Out)
	if l.NoBias {
		bias = 0
	}
	switch p := lp.Precision; {
	case p.IsMX():
		// Codes and E8M0 scales, one MX row per output channel, as
		// model.MXFC.Bytes counts them.
		f, _ := kernels.MXFormatOf(p)
		return int64(l.Out)*int64(kernels.MXCodeBytes(f, l.In)+kernels.MXScales(l.In)) + bias
	case p == precision.Int8:
		scales := int64(1)
		if lp.Weights != quantize.PerTensor {
			scales = int64(l.Out)
		}
		b := w + 4*scales + bias
		if lp.Activation == quantize.Static {
			b += 8
		}
		return b
	case p.Valid() && !p.IsInteger():
		return int64(p.Bits())/8*w + bias
	}
	return 4*w + bias
}

// Rung is one step of a layer's ladder: a name and the LayerPlan it stands for.
type Rung struct {
	Name string             `json:"name"`
	Plan quantize.LayerPlan `json:"plan"`
}

// RungName is the name a ladder gives lp: for an FC layer
// precision.FCLabel of its precision and activation ("int8-static",
// "fp16"), for a table its precision with "-greedy" for greedy ranges
// ("int4-greedy").
func RungName(kind string, lp quantize.LayerPlan) string {
	if kind == KindTable {
		if lp.Precision == precision.Mixed {
			return mixedRungName(lp)
		}
		if lp.Greedy {
			return lp.Precision.String() + "-greedy"
		}
		return lp.Precision.String()
	}
	return precision.FCLabel(lp.Precision, lp.Activation)
}

// fcRungs and tableRungs are the rungs --ladder accepts, by RungName:
// every precision of the kind, int8 FC layers with static (calibrated,
// per-tensor, l2) and dynamic (per-row) activations, MX FC layers with
// bf16 and with dynamic MX activations, sub-byte tables with and without
// greedy ranges.
var fcRungs, tableRungs = rungSet(KindFC), rungSet(KindTable)

func rungSet(kind string) map[string]quantize.LayerPlan {
	var plans []quantize.LayerPlan
	if kind == KindTable {
		for _, p := range precision.Tables() {
			if p.IsMixed() {
				continue // parametric: tableRung reads mixed rungs' names
			}
			plans = append(plans, quantize.LayerPlan{Precision: p})
			if p.IsInteger() && p.Bits() < 8 {
				plans = append(plans, quantize.LayerPlan{Precision: p, Greedy: true})
			}
		}
	} else {
		for _, p := range precision.FC() {
			if p.IsMX() {
				// Weights only (bf16 activations), and with MX activations.
				plans = append(plans, quantize.LayerPlan{Precision: p}, quantize.LayerPlan{Precision: p, Activation: quantize.Dynamic})
				continue
			}
			if !p.IsInteger() {
				plans = append(plans, quantize.LayerPlan{Precision: p})
				continue
			}
			plans = append(plans,
				quantize.LayerPlan{Precision: p, Activation: quantize.Static, Granularity: quantize.PerTensor, Weights: quantize.PerChannel, Method: "l2", WeightRange: quantize.NarrowRange},
				quantize.LayerPlan{Precision: p, Activation: quantize.Dynamic, Granularity: quantize.PerRow, Weights: quantize.PerChannel, WeightRange: quantize.NarrowRange})
		}
	}
	m := map[string]quantize.LayerPlan{}
	for _, lp := range plans {
		m[RungName(kind, lp)] = lp
	}
	return m
}

// NeedsRanges reports whether FC rung name quantizes its inputs with
// calibrated ranges (static activations).
func NeedsRanges(name string) bool {
	lp, ok := fcRungs[name]
	return ok && lp.Activation == quantize.Static
}

// rungError is a rung name a ladder does not have. When the name's
// precision is unknown (int9, int9-greedy) it wraps the
// *precision.UnknownError, as every unknown precision is reported.
type rungError struct {
	layer, kind, name, rungs string
	err                      error // *precision.UnknownError or nil
}

func (e *rungError) Error() string {
	return fmt.Sprintf("ladder of %s (%s): unknown rung %q; rungs: %s", e.layer, e.kind, e.name, e.rungs)
}

func (e *rungError) Unwrap() error { return e.err }

// unknownRung describes why name is not a rung of set: its precision (the
// name up to its first "-") through precision.Parse, or a mode that
// precision does not have for the kind.
func unknownRung(l Layer, name string, set map[string]quantize.LayerPlan) error {
	e := &rungError{layer: l.Name, kind: l.Kind, name: name, rungs: rungNames(set)}
	if l.Kind == KindTable {
		e.rungs += ", " + mixedSyntax
	}
	base, _, _ := strings.Cut(name, "-")
	if _, err := precision.Parse(base); err != nil {
		e.err = err
	}
	return e
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

// DefaultLadders are issue 5's with issue 15's MX and mixed rungs: tables
// mixed-int8-int2 at 1, 2 and 4% -> mxfp4 -> mixed-int8-mxfp4 at 5 and 15%
// -> 4-bit -> mxfp6_e2m3 -> 8-bit -> fp16 -> fp32 (2-bit first with
// allowInt2); FC mxfp4 -> mxfp6_e2m3 -> int8 static -> int8 dynamic ->
// fp16 -> fp32. rq search's help spells these out (a test holds it to
// them).
//
// The MX rungs are placed by bytes, as a ladder's order should be (cheaper
// below): a row of dim d costs d/2 + ceil(d/32) bytes at mxfp4 against
// d/2 + 4 at int4, less up to d = 96 (9 bytes to 12 at criteo's d = 16),
// the same up to 128 and more beyond; 3d/4 + ceil(d/32) at mxfp6_e2m3,
// between int4 and int8's d + 8 from d = 14 on. Where a rung costs no less
// than one above it (mxfp4 at d >= 97, int4 at d <= 13), the search's prune
// drops it, so the order stays safe at every dim. Of the two 6-bit formats
// e2m3 is the one kept: within a block of 32 an embedding row's values
// span a few powers of two, where three mantissa bits beat e3m2's two
// (whose wider exponent pays only for blocks spanning 2^4 and more). The
// 8-bit MX formats are left to --ladder: at d + ceil(d/32) bytes they save
// only int8's scale and bias (7 of 24 bytes at d = 16, none at d = 256),
// and mxfp8's 3 or 2 mantissa bits lose to row-wise int8's 8 bits on rows
// without an outlier; mxint8 is as accurate as int8 but as big.
//
// FC layers start at the MX formats too (weights only: model.MXFC runs
// them on the bf16 GEMM): mxfp4 at In/2 + ceil(In/32) bytes per output
// channel and mxfp6_e2m3 at 3·In/4 + ceil(In/32), against int8's In + 4.
// The MX activation rungs ("mxfp4-dynamic") are left to --ladder: they
// save no bytes and add rounding error, for hardware whose MX units want
// MX inputs.
//
// The mixed rungs (issue 15; only for tables the ranges have access counts
// for) keep the calibration's most looked-up rows at int8 and the rest at
// a narrower precision. A hot row costs its int8 row and its 4-byte id,
// d + 12 bytes, so at share h a row of dim d averages c + (d + 12 - c)·h
// bytes over a cold precision of c bytes a row. With int2 cold (c = d/4 +
// 4, 8 bytes at d = 16) the rungs at 1, 2 and 4% cost 8.2, 8.4 and 8.8
// bytes at d = 16: below mxfp4's 9, as long as h < 1/(d + 12 - c) (5% at
// d = 16, 3% at 128). With mxfp4 cold the rungs at 5 and 15% cost 9.95 and
// 11.85 bytes at d = 16, between mxfp4 and int4; from d = 32 on (mxfp4's
// d/2 + ceil(d/32) against int4's d/2 + 4) they cost more than int4, and
// prune drops them.
func DefaultLadders(allowInt2 bool) Ladders {
	l := Ladders{
		FC: []string{
			precision.MXFP4.String(), precision.MXFP6E2M3.String(),
			precision.FCLabel(precision.Int8, quantize.Static), precision.FCLabel(precision.Int8, quantize.Dynamic),
			precision.FP16.String(), precision.FP32.String()},
		Table: []string{precision.MXFP4.String(), precision.Int4.String(), precision.MXFP6E2M3.String(), precision.Int8.String(), precision.FP16.String(), precision.FP32.String()},
	}
	l.Table = append(defaultMixedBelow(), l.Table...)
	l.Table = slices.Insert(l.Table, slices.Index(l.Table, precision.MXFP4.String())+1, defaultMixedAbove()...)
	if allowInt2 {
		l.Table = append([]string{precision.Int2.String()}, l.Table...)
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
			if !ok && l.Kind == KindTable {
				var err error
				if lp, ok, err = tableRung(l, n); err != nil {
					return nil, err
				}
				if !ok {
					continue // a mixed rung, on a table without access counts
				}
				n = RungName(l.Kind, lp)
			}
			if !ok {
				return nil, unknownRung(l, n, set)
			}
			if seen[n] {
				return nil, fmt.Errorf("ladder of %s: rung %q twice", l.Name, n)
			}
			seen[n] = true
			if lp.Precision == precision.FP32 {
				continue // always last, added below
			}
			out[i] = append(out[i], Rung{Name: n, Plan: lp})
		}
		top := quantize.LayerPlan{Precision: precision.FP32}
		out[i] = append(out[i], Rung{Name: RungName(l.Kind, top), Plan: top})
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
