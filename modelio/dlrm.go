package modelio

import (
	"context"
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
// file names the source in errors. A top MLP width that fits more than one
// interaction is an *AmbiguousInteractionError: use BuildNetworkWith.
func BuildNetwork(file string, tensors []Tensor) (*model.Network, string, error) {
	return buildNetwork(file, tensors, true, "")
}

// BuildNetworkWith is BuildNetwork with the user's choices: o.Interaction,
// when set, picks the interaction instead of inferring it (it must still fit
// the top MLP's width).
func BuildNetworkWith(file string, tensors []Tensor, o LoadOptions) (*model.Network, string, error) {
	return buildNetwork(file, tensors, true, o.Interaction)
}

// buildStructure infers the network's layers and shapes only (no weights,
// no validation of weight lengths): quantized files fill the weights
// themselves. recorded is the interaction the file's metadata names (rq
// writes rq.interaction), which settles a width that fits several.
func buildStructure(file string, tensors []Tensor, recorded string) (*model.Network, string, error) {
	return buildNetwork(file, tensors, false, recorded)
}

// LoadOptions are what a user may choose about how a model file is read.
// The zero value infers everything.
type LoadOptions struct {
	// Interaction is "dot", "dot-self" or "cat" to choose the interaction,
	// or "" to infer it from the top MLP's input width (an error when the
	// width fits more than one).
	Interaction string
}

type loadOptionsKey struct{}

// WithLoadOptions returns a context carrying o, for loaders that take a
// context (LoadContext): the choices then reach every model a command
// loads without each call site passing them.
func WithLoadOptions(ctx context.Context, o LoadOptions) context.Context {
	return context.WithValue(ctx, loadOptionsKey{}, o)
}

// LoadOptionsFrom returns the options WithLoadOptions put in ctx (the zero
// value when none).
func LoadOptionsFrom(ctx context.Context) LoadOptions {
	if ctx == nil {
		return LoadOptions{}
	}
	o, _ := ctx.Value(loadOptionsKey{}).(LoadOptions)
	return o
}

// Interactions are the names ParseInteraction accepts, in the order rq
// tries them.
var Interactions = []string{"dot", "dot-self", "cat"}

// ParseInteraction maps an interaction's name (as --interaction and the
// rq.interaction metadata spell it) to its op.
func ParseInteraction(s string) (model.InteractionOp, error) {
	for _, op := range []model.InteractionOp{model.Dot, model.DotSelf, model.Cat} {
		if op.String() == s {
			return op, nil
		}
	}
	return 0, fmt.Errorf("unknown interaction %q, want one of %s", s, strings.Join(Interactions, ", "))
}

// AmbiguousInteractionError reports a top MLP whose input width fits more
// than one interaction: the file does not say which one the model was
// trained with, and guessing would give a wrong network silently.
type AmbiguousInteractionError struct {
	File       string
	Tensor     string // the top MLP's first weight
	Width      int
	Candidates []model.InteractionOp
}

func (e *AmbiguousInteractionError) Error() string {
	names := make([]string, len(e.Candidates))
	for i, op := range e.Candidates {
		names[i] = op.String()
	}
	return fmt.Sprintf("%s: tensor %q: its %d inputs fit the %s interactions alike, and the file does not say which the model was trained with; choose with --interaction %s",
		e.File, e.Tensor, e.Width, strings.Join(names, " and "), strings.Join(names, "|"))
}

// buildNetwork infers the network; interaction, when not "", is the
// interaction to use instead of inferring it.
func buildNetwork(file string, tensors []Tensor, withWeights bool, interaction string) (*model.Network, string, error) {
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

	// The interaction follows from the top MLP's input width, unless the
	// caller names it. The widths of dot and cat coincide when d = (T+1)/2
	// (T tables of width d), and those of dot-self and cat when
	// T*d = (T+1)(T+2)/2: such a width does not tell them apart.
	d := net.EmbDim()
	dims := make([]int, len(net.Tables))
	var odd *model.Table // the first table narrower or wider than d
	for i, t := range net.Tables {
		dims[i] = t.Dim
		if t.Dim != d && odd == nil {
			odd = t
		}
	}
	sameDims := odd == nil
	want := net.Top[0].In
	topW := net.Top[0].Name + ".weight"
	fits := func(op model.InteractionOp) bool {
		// Dot products need every vector as wide as the bottom output.
		return model.InteractionWidth(op, d, dims) == want && (op == model.Cat || sameDims)
	}
	if interaction != "" {
		op, err := ParseInteraction(interaction)
		if err != nil {
			if !withWeights { // the choice came from the file's metadata
				return nil, "", &FormatError{File: file, Tensor: "__metadata__", Msg: "rq.interaction: " + err.Error()}
			}
			return nil, "", &FormatError{File: file, Msg: err.Error()}
		}
		if !fits(op) {
			msg := fmt.Sprintf("takes %d inputs, but the %s interaction of a %d-wide bottom output and %d tables needs %d", want, op, d, len(dims), model.InteractionWidth(op, d, dims))
			if op != model.Cat && !sameDims {
				msg = fmt.Sprintf("the %s interaction needs every table as wide as the bottom output (%d), but %s is %d wide", op, d, odd.Name, odd.Dim)
			}
			return nil, "", &FormatError{File: file, Tensor: topW, Msg: msg}
		}
		net.Interaction = op
	} else {
		var found []model.InteractionOp
		var tried []string
		for _, op := range []model.InteractionOp{model.Dot, model.DotSelf, model.Cat} {
			if op != model.Cat && !sameDims {
				tried = append(tried, fmt.Sprintf("%s needs every table %d wide, but %s is %d", op, d, odd.Name, odd.Dim))
			} else {
				tried = append(tried, fmt.Sprintf("%s gives %d", op, model.InteractionWidth(op, d, dims)))
			}
			if fits(op) {
				found = append(found, op)
			}
		}
		switch len(found) {
		case 0:
			return nil, "", &FormatError{File: file, Tensor: topW, Msg: fmt.Sprintf(
				"takes %d inputs, which fits no interaction of a %d-wide bottom output and %d tables (%s)", want, d, len(dims), strings.Join(tried, ", "))}
		case 1:
			net.Interaction = found[0]
		default:
			return nil, "", &AmbiguousInteractionError{File: file, Tensor: topW, Width: want, Candidates: found}
		}
	}
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
