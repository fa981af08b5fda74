package modelio

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/rqtools/rq/model"
)

// scheme maps one family of tensor names onto a DLRM. Each pattern's first
// group is the layer's index; a layer's name is its tensor prefix (the match
// without ".weight"/".bias"), which is the name rq uses everywhere.
type scheme struct {
	name   string
	table  *regexp.Regexp // embedding table weight
	bottom *regexp.Regexp // bottom MLP weight or bias; group 2 is weight|bias
	top    *regexp.Regexp // top MLP weight or bias
}

// schemes are tried in order; the first whose patterns match a tensor of the
// file is used. To support another layout (e.g. TorchRec's DLRM, whose tables
// live under sparse_arch.embedding_bag_collection.embedding_bags.*), add a row.
var schemes = []scheme{
	{
		name:   "facebookresearch/dlrm",
		table:  regexp.MustCompile(`^emb_l\.(\d+)\.weight$`),
		bottom: regexp.MustCompile(`^bot_l\.(\d+)\.(weight|bias)$`),
		top:    regexp.MustCompile(`^top_l\.(\d+)\.(weight|bias)$`),
	},
}

// BuildNetwork infers a DLRM from a state dict's tensors. Tensors are viewed
// without copying where possible (F32, aligned), so the network may alias the
// file's memory: keep the file open while the network is in use.
// file names the source in errors.
func BuildNetwork(file string, tensors []Tensor) (*model.Network, string, error) {
	return buildNetwork(file, tensors, true)
}

// buildStructure infers the network's layers and shapes only (no weights,
// no validation of weight lengths): quantized files fill the weights
// themselves.
func buildStructure(file string, tensors []Tensor) (*model.Network, string, error) {
	return buildNetwork(file, tensors, false)
}

func buildNetwork(file string, tensors []Tensor, withWeights bool) (*model.Network, string, error) {
	var sc *scheme
	for i := range schemes {
		for j := range tensors {
			if schemes[i].table.MatchString(tensors[j].Name) || schemes[i].bottom.MatchString(tensors[j].Name) {
				sc = &schemes[i]
				break
			}
		}
		if sc != nil {
			break
		}
	}
	if sc == nil {
		names := make([]string, 0, 5)
		for i := 0; i < len(tensors) && i < 5; i++ {
			names = append(names, tensors[i].Name)
		}
		return nil, "", &UnsupportedError{File: file, What: fmt.Sprintf("no known DLRM naming scheme matches the tensors (first: %s); rq knows facebookresearch/dlrm names (emb_l.N.weight, bot_l.N.weight, top_l.N.weight)", strings.Join(names, ", "))}
	}

	type fc struct {
		idx    int
		w, b   *Tensor
		prefix string
	}
	tables := map[int]*Tensor{}
	bottom, top := map[int]*fc{}, map[int]*fc{}
	for i := range tensors {
		t := &tensors[i]
		if m := sc.table.FindStringSubmatch(t.Name); m != nil {
			k, err := strconv.Atoi(m[1])
			if err != nil || k > 1<<20 {
				return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: "table index out of range"}
			}
			tables[k] = t
			continue
		}
		var dst map[int]*fc
		var m []string
		if m = sc.bottom.FindStringSubmatch(t.Name); m != nil {
			dst = bottom
		} else if m = sc.top.FindStringSubmatch(t.Name); m != nil {
			dst = top
		} else {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("not part of a %s network (expected emb_l.N.weight, bot_l.N.{weight,bias} or top_l.N.{weight,bias})", sc.name)}
		}
		k, err := strconv.Atoi(m[1])
		if err != nil || k > 1<<20 {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: "layer index out of range"}
		}
		l := dst[k]
		if l == nil {
			l = &fc{idx: k, prefix: strings.TrimSuffix(t.Name, "."+m[2])}
			dst[k] = l
		}
		if m[2] == "weight" {
			l.w = t
		} else {
			l.b = t
		}
	}

	net := &model.Network{}
	// Tables: numbered 0..T-1 without gaps.
	for k := 0; k < len(tables); k++ {
		t, ok := tables[k]
		if !ok {
			return nil, "", &FormatError{File: file, Msg: fmt.Sprintf("embedding tables are not numbered 0..%d: emb_l.%d.weight is missing", len(tables)-1, k)}
		}
		if len(t.Shape) != 2 || t.Shape[0] < 1 || t.Shape[1] < 1 {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("embedding table has shape %v, want [rows, dim]", t.Shape)}
		}
		var w []float32
		if withWeights {
			var err error
			if w, err = weights(file, t); err != nil {
				return nil, "", err
			}
		}
		net.Tables = append(net.Tables, &model.Table{Name: strings.TrimSuffix(t.Name, ".weight"), Rows: int64(t.Shape[0]), Dim: t.Shape[1], Weight: w})
	}
	mlp := func(ls map[int]*fc, what string) ([]*model.Linear, error) {
		keys := make([]int, 0, len(ls))
		for k := range ls {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make([]*model.Linear, 0, len(keys))
		for _, k := range keys {
			l := ls[k]
			if l.w == nil || l.b == nil {
				missing := l.prefix + ".weight"
				if l.w != nil {
					missing = l.prefix + ".bias"
				}
				return nil, &FormatError{File: file, Tensor: missing, Msg: "missing (each " + what + " layer needs a weight and a bias)"}
			}
			if len(l.w.Shape) != 2 || l.w.Shape[0] < 1 || l.w.Shape[1] < 1 {
				return nil, &FormatError{File: file, Tensor: l.w.Name, Msg: fmt.Sprintf("shape %v, want [out, in]", l.w.Shape)}
			}
			if len(l.b.Shape) != 1 || l.b.Shape[0] != l.w.Shape[0] {
				return nil, &FormatError{File: file, Tensor: l.b.Name, Msg: fmt.Sprintf("shape %v, want [%d] to match %s %v", l.b.Shape, l.w.Shape[0], l.w.Name, l.w.Shape)}
			}
			var w, b []float32
			if withWeights {
				var err error
				if w, err = weights(file, l.w); err != nil {
					return nil, err
				}
				if b, err = weights(file, l.b); err != nil {
					return nil, err
				}
			}
			out = append(out, &model.Linear{Name: l.prefix, In: l.w.Shape[1], Out: l.w.Shape[0], Act: model.ActReLU, Weight: w, Bias: b})
		}
		return out, nil
	}
	var err error
	if net.Bottom, err = mlp(bottom, "bottom MLP"); err != nil {
		return nil, "", err
	}
	if net.Top, err = mlp(top, "top MLP"); err != nil {
		return nil, "", err
	}
	if len(net.Bottom) == 0 {
		return nil, "", &FormatError{File: file, Msg: "no bottom MLP (bot_l.N.weight) found"}
	}
	if len(net.Top) == 0 {
		return nil, "", &FormatError{File: file, Msg: "no top MLP (top_l.N.weight) found"}
	}
	if len(net.Tables) == 0 {
		return nil, "", &FormatError{File: file, Msg: "no embedding tables (emb_l.N.weight) found"}
	}
	net.Top[len(net.Top)-1].Act = model.ActSigmoid
	net.NumDense = net.Bottom[0].In

	// The interaction follows from the top MLP's input width.
	d := net.EmbDim()
	dims := make([]int, len(net.Tables))
	for i, t := range net.Tables {
		dims[i] = t.Dim
	}
	want := net.Top[0].In
	var found []model.InteractionOp
	var tried []string
	for _, op := range []model.InteractionOp{model.Dot, model.DotSelf, model.Cat} {
		w := model.InteractionWidth(op, d, dims)
		tried = append(tried, fmt.Sprintf("%s gives %d", op, w))
		if w == want {
			found = append(found, op)
		}
	}
	if len(found) == 0 {
		return nil, "", &FormatError{File: file, Tensor: net.Top[0].Name + ".weight", Msg: fmt.Sprintf(
			"takes %d inputs, which fits no interaction of a %d-wide bottom output and %d tables (%s)", want, d, len(dims), strings.Join(tried, ", "))}
	}
	net.Interaction = found[0]
	if !withWeights {
		return net, sc.name, nil
	}
	if err := net.Validate(); err != nil {
		return nil, "", &FormatError{File: file, Msg: err.Error()}
	}
	return net, sc.name, nil
}

// weights returns t as float32 values, aliasing t.Data when it is aligned F32.
func weights(file string, t *Tensor) ([]float32, error) {
	if v, ok := Float32View(t); ok {
		return v, nil
	}
	switch t.DType {
	case F32, F16, BF16, F64:
	default:
		return nil, &UnsupportedError{File: file, What: fmt.Sprintf("tensor %q has dtype %s; fp32 models need floating-point weights", t.Name, t.DType)}
	}
	v, err := Float32s(t)
	if err != nil {
		return nil, &FormatError{File: file, Tensor: t.Name, Msg: err.Error()}
	}
	return v, nil
}
